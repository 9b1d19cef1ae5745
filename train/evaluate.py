"""``mmvideo -v train-evaluate --checkpoint CKPT --pairs pairs.csv --images DIR --out DIR``.

Swaps each (source, target) pair of held-out stills and reports, for the model and for two
reference rows that make the numbers readable ("target unchanged": the swap is the target crop;
"source pasted": the swap is the source's own aligned crop; "model self-swap": the target through
the model with its own identity, as blurry as the swap but with no identity change):

- CSIM with the training encoder and with an independent judge encoder (cosine of the source's
  and the swap's identity embeddings; the judge was not used in training, so the generator
  cannot have learnt to fool it),
- ID retrieval top-1 (%, judge encoder): the swap's nearest still among the other stills has the
  source's identity,
- pose error (degrees, L2 of yaw/pitch/roll from the face-analysis pose fit, swap vs target),
- landmark expression distance (our proxy for the paper's 3DMM expression error, see
  ``train.metrics.expression_error``),
- realism (``magicmask.quality``, docs/quality.md) of each output against the target crop: chip
  SSIM (on the self-swap row, the same-person fidelity test), sharpness ratio, band-energy
  ratio and its colour twin (all want 1: blur < 1, noise and blotches > 1),
- temporal jitter on clips (gray levels of flicker the swap adds, see ``train.metrics``),
- FD: the Fréchet distance (FID's formula) between the judge encoder's embeddings of the
  method's outputs and of the real target crops. Not FID: Inception-v3 is not available
  offline, and identity features also move with the identity change, so read it against the
  reference rows ("source pasted" = real faces of other people; "model self-swap" = the model's
  image quality with no identity change).

Writes ``eval.json`` and ``eval.md`` (a table with the paper's column order).
"""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import numpy as np
import torch
from tqdm import tqdm

from magicmask import quality
from magicmask.checkpoint import load_checkpoint
from magicmask.face.align import align_identity
from magicmask.face.analyzer import FaceAnalyzer, FaceConfig
from magicmask.face.identity import build_identity_encoder
from magicmask.face.image import load_image
from magicmask.face.pose import estimate_pose
from magicmask.face.prepare import TargetInputs, prepare_target
from magicmask.losses import to_identity_frame
from mmcore.atomic import write_errors
from mmcore.errors import InvalidInput, MissingInput, NoFaceFound
from train import metrics
from train.config import encoder_paths

log = logging.getLogger(__name__)

METHODS = ("target unchanged", "source pasted", "model self-swap", "model")
COLUMNS = (
    "id_retrieval", "csim_judge", "csim_train", "pose_err", "expr_err", "fd_judge",
    "chip_ssim", "sharpness", "band", "color_band", "jitter", "ms",
)  # fmt: skip
HEADERS = {
    "id_retrieval": "ID retr. % ↑",
    "csim_judge": "CSIM {judge} ↑",
    "csim_train": "CSIM {train} (train enc.)",
    "pose_err": "pose err. ° ↓",
    "expr_err": "expr. (landmark proxy) ↓",
    "fd_judge": "FD {judge} (not FID) ↓",
    "chip_ssim": "chip SSIM vs target",
    "sharpness": "sharpness ratio (→ 1)",
    "band": "band ratio (→ 1)",
    "color_band": "colour band ratio (→ 1)",
    "jitter": "jitter ↓",
    "ms": "ms/face ↓",
}


@dataclass
class Still:
    """One analysed still: identity, target-side inputs and the 112 identity crop."""

    name: str
    identity: str
    target: TargetInputs
    id_crop: np.ndarray


@dataclass
class EvalRow:
    method: str
    id_retrieval: float
    csim_judge: float
    csim_train: float
    pose_err: float
    expr_err: float
    fd_judge: float  # Fréchet distance of judge embeddings, outputs vs the real target crops
    chip_ssim: float  # magicmask.quality on the output vs the target crop: the fidelity test on
    sharpness: float  # the self-swap row; sharpness and band ratios want 1 on every row
    band: float
    color_band: float  # the band ratio of the chroma: coloured blotches the grey ones miss
    jitter: float | None
    ms: float | None  # generator time per face in this process (batches of 8, no I/O)
    pairs: int
    csim_judge_per_pair: list[float] = field(default_factory=list, repr=False)
    csim_train_per_pair: list[float] = field(default_factory=list, repr=False)


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """(source, target) file names: a ``source,target`` CSV, or ``file_a,file_b,same`` whose
    different-identity rows are used (a is the source)."""
    if not Path(path).is_file():
        raise MissingInput(f"{path}: pairs file not found")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows and {"source", "target"} <= rows[0].keys():
        return [(r["source"], r["target"]) for r in rows]
    if rows and {"file_a", "file_b", "same"} <= rows[0].keys():
        return [(r["file_a"], r["file_b"]) for r in rows if r["same"].strip() == "0"]
    raise InvalidInput(f"{path}: expected columns source,target or file_a,file_b,same")


def read_identities(path: Path) -> dict[str, str]:
    with open(path, newline="") as fh:
        return {r["file"]: r["identity"] for r in csv.DictReader(fh)}


def held_out(
    pairs_csv: Path, images: Path, max_pairs: int
) -> tuple[list[tuple[str, str]], dict[str, str], FaceAnalyzer]:
    """The pairs of ``pairs_csv`` (at most ``max_pairs``, the same ones on every run), the
    identities of ``images``' identities.csv (none without one) and the stills' analyzer: one
    place, so that the gate and ``mmvideo train evaluate`` measure the same pairs and faces."""
    pairs = read_pairs(pairs_csv)
    if max_pairs and len(pairs) > max_pairs:
        pick = np.random.default_rng(0).choice(len(pairs), max_pairs, replace=False)
        pairs = [pairs[i] for i in sorted(pick)]
    ids_file = Path(images) / "identities.csv"
    identities = read_identities(ids_file) if ids_file.is_file() else {}
    analyzer = FaceAnalyzer(FaceConfig(face_backend="dlib", detector="hog", detect_upsample=1))
    return pairs, identities, analyzer


def analyze_still(path: Path, identity: str, analyzer: FaceAnalyzer) -> Still:
    image = load_image(path, max_side=1600)
    faces = analyzer.detect(image)
    if not faces:
        raise NoFaceFound(f"{path}: no face found")
    f = faces[0]
    id_crop, _ = align_identity(image, f.landmarks)
    return Still(path.name, identity, prepare_target(image, f.landmarks, f.landmarks_3d), id_crop)


def _tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0


@torch.no_grad()
def embed_crops224(encoder, crops: list[np.ndarray]) -> np.ndarray:
    """Identity embeddings of 224 target-frame crops (mapped to the 112 frame as in training)."""
    return encoder(to_identity_frame(_tensor(crops))).numpy()


@torch.no_grad()
def swap(
    generator, e_source: np.ndarray, targets: list[TargetInputs], batch: int = 8
) -> list[np.ndarray]:
    """Generator outputs as 224 uint8 crops."""
    out = []
    for k in range(0, len(targets), batch):
        ts = targets[k : k + batch]
        x = _tensor([t.crop for t in ts])
        depth = torch.from_numpy(np.stack([t.depth for t in ts]))[:, None]
        heat = torch.from_numpy(np.stack([t.heatmaps for t in ts]))
        y = generator(x, torch.from_numpy(e_source[k : k + batch]), depth, heat)
        out += list((y.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy())
    return out


def crop_geometry(
    analyzer: FaceAnalyzer, crop: np.ndarray, box_from: np.ndarray
) -> tuple[np.ndarray, tuple]:
    """Landmarks and pose re-measured on a 224 crop, inside the box of ``box_from`` landmarks
    (a detector often misses a face that fills the whole crop)."""
    lo, hi = box_from.min(0), box_from.max(0)
    face = analyzer.landmarks(crop, np.array([[*lo, *hi]], np.float32))[0]
    return face.landmarks, estimate_pose(face.landmarks, crop.shape[:2])


def evaluate_pairs(
    generator,
    train_enc,
    judge_enc,
    stills: dict[str, Still],
    pairs: list[tuple[str, str]],
    analyzer: FaceAnalyzer,
) -> list[EvalRow]:
    """The three rows (target unchanged, source pasted, model) over ``pairs``."""
    names = sorted(stills)
    id112 = _tensor([stills[n].id_crop for n in names])
    with torch.no_grad():
        train_emb = dict(zip(names, train_enc(id112).numpy()))
        judge_emb = dict(zip(names, judge_enc(id112).numpy()))
    src = [stills[s] for s, _ in pairs]
    tgt = [stills[t] for _, t in pairs]
    t0 = time.perf_counter()
    swapped = swap(generator, np.stack([train_emb[s.name] for s in src]), [t.target for t in tgt])
    model_ms = (time.perf_counter() - t0) * 1000 / len(pairs)
    outputs = {
        "target unchanged": [t.target.crop for t in tgt],
        "source pasted": [s.target.crop for s in src],
        # The target through the model with its own identity: same image quality as the swap,
        # so swap vs self-swap isolates the identity change from the model's blur.
        "model self-swap": swap(
            generator, np.stack([train_emb[t.name] for t in tgt]), [t.target for t in tgt]
        ),
        "model": swapped,
    }
    labels = np.array([stills[n].identity for n in names])
    embedded = {
        m: (embed_crops224(train_enc, c), embed_crops224(judge_enc, c)) for m, c in outputs.items()
    }
    real_judge = embedded["target unchanged"][1]  # the real target crops, FD's reference
    rows = []
    for method, crops in outputs.items():
        e_train, e_judge = embedded[method]
        csim_t = metrics.cosine(np.stack([train_emb[s.name] for s in src]), e_train)
        csim_j = metrics.cosine(np.stack([judge_emb[s.name] for s in src]), e_judge)
        hits = []
        for (s, t), q in zip(pairs, e_judge):
            keep = [
                i for i, n in enumerate(names) if n not in (s, t)
            ]  # never the pair's own images
            gallery = np.stack([judge_emb[names[i]] for i in keep])
            hits.append(
                metrics.retrieval_top1(
                    q[None], np.array([stills[s].identity]), gallery, labels[keep]
                )
            )
        poses, exprs, chips = [], [], []
        for crop, t in zip(crops, tgt):
            chips.append(quality.realism(t.target.crop, crop, t.target.landmarks))
            ref_pts, ref_pose = crop_geometry(analyzer, t.target.crop, t.target.landmarks)
            pts, pose = crop_geometry(analyzer, crop, t.target.landmarks)
            poses.append(metrics.pose_error(np.array([pose]), np.array([ref_pose]))[0])
            exprs.append(metrics.expression_error(pts[None], ref_pts[None])[0])
        rows.append(
            EvalRow(
                method,
                float(np.mean(hits)),
                float(csim_j.mean()),
                float(csim_t.mean()),
                float(np.mean(poses)),
                float(np.mean(exprs)),
                metrics.frechet_distance(e_judge, real_judge),
                float(np.mean([r.chip_ssim for r in chips])),
                float(np.nanmean([r.sharpness_ratio for r in chips])),
                float(np.nanmean([r.band_ratio for r in chips])),
                float(np.nanmean([r.color_band_ratio for r in chips])),
                None,
                model_ms if method == "model" else None,
                len(pairs),
                csim_j.tolist(),
                csim_t.tolist(),
            )
        )
    return rows


def clip_jitter(
    generator, train_enc, analyzer: FaceAnalyzer, clip: Path, source: Still, frames: int
) -> float:
    """Flicker the model adds on the first ``frames`` frames of ``clip`` (frames without a face
    are left out)."""
    targets = []
    with av.open(str(clip)) as container:
        for k, frame in enumerate(container.decode(video=0)):
            if k >= frames:
                break
            image = frame.to_ndarray(format="rgb24")
            faces = analyzer.detect(image)
            if faces:
                targets.append(prepare_target(image, faces[0].landmarks, faces[0].landmarks_3d))
    if len(targets) < 2:
        raise NoFaceFound(f"{clip}: fewer than 2 frames with a face in the first {frames}")
    with torch.no_grad():
        e = train_enc(_tensor([source.id_crop])).numpy()
    swaps = swap(generator, np.repeat(e, len(targets), 0), targets)
    return metrics.temporal_jitter(
        np.stack(swaps), np.stack([t.crop for t in targets]), np.stack([t.mask for t in targets])
    )


def identity_gain(
    rows: list[EvalRow], train_name: str, judge_name: str
) -> dict[str, dict[str, float]]:
    """Per pair, CSIM(source, swap) − CSIM(source, unchanged target), for each encoder."""
    by = {r.method: r for r in rows}
    model, target = by["model"], by["target unchanged"]
    return {
        judge_name: metrics.paired_gain(model.csim_judge_per_pair, target.csim_judge_per_pair),
        train_name: metrics.paired_gain(model.csim_train_per_pair, target.csim_train_per_pair),
    }


def gain_lines(gains: dict[str, dict[str, float]]) -> str:
    lines = [
        "",
        "Per pair, CSIM(source, swap) − CSIM(source, target) (bootstrap 95 % interval of the mean):",
        "",
    ]
    for name, g in gains.items():
        lines.append(
            f"- {name}: {g['mean']:+.3f} [{g['ci95_lo']:+.3f}, {g['ci95_hi']:+.3f}], "
            f"{g['improved'] * 100:.0f} % of pairs improve"
        )
    return "\n".join(lines) + "\n"


def markdown_table(rows: list[EvalRow], train_name: str, judge_name: str) -> str:
    heads = [HEADERS[c].format(train=train_name, judge=judge_name) for c in COLUMNS]
    lines = ["| method | " + " | ".join(heads) + " | pairs |", "|---" * (len(COLUMNS) + 2) + "|"]
    for r in rows:
        cells = []
        for c in COLUMNS:
            v = getattr(r, c)
            cells.append(
                "—"
                if v is None
                else f"{v:.1f}"
                if c in ("id_retrieval", "pose_err", "expr_err", "ms")
                else f"{v:.3f}"
            )
        lines.append(f"| {r.method} | " + " | ".join(cells) + f" | {r.pairs} |")
    return "\n".join(lines) + "\n"


def run_evaluation(
    checkpoint: Path, pairs_csv: Path, images: Path, out: Path, judge: str, max_pairs: int,
    clips: list[Path], clip_frames: int, train_weights: str = "", judge_weights: str = "",
) -> list[EvalRow]:  # fmt: skip
    """Everything ``main`` does; returns the rows it wrote."""
    loaded = load_checkpoint(checkpoint)
    if judge == loaded.identity_encoder:
        log.warning("judge encoder %s is the training encoder: CSIM is not independent", judge)
    train_enc = build_identity_encoder(
        loaded.identity_encoder, **encoder_paths(loaded.identity_encoder, train_weights)
    )
    judge_enc = build_identity_encoder(judge, **encoder_paths(judge, judge_weights))
    pairs, identities, analyzer = held_out(pairs_csv, images, max_pairs)
    stills: dict[str, Still] = {}
    names = sorted({n for p in pairs for n in p} | set(identities))
    for name in tqdm(names, desc="analyze stills", unit="image"):
        try:
            stills[name] = analyze_still(
                Path(images) / name, identities.get(name, Path(name).stem), analyzer
            )
        except (NoFaceFound, MissingInput) as exc:
            log.warning("skipped: %s", exc)
    usable = [(s, t) for s, t in pairs if s in stills and t in stills]
    if not usable:
        raise InvalidInput(f"{pairs_csv}: no pair with a face found in both images")
    rows = evaluate_pairs(loaded.generator, train_enc, judge_enc, stills, usable, analyzer)
    if clips:
        source = stills[usable[0][0]]
        jit = [
            clip_jitter(loaded.generator, train_enc, analyzer, c, source, clip_frames)
            for c in clips
        ]
        rows[0].jitter, rows[-1].jitter = 0.0, float(np.mean(jit))
    with write_errors(out, "create output folder"):
        out.mkdir(parents=True, exist_ok=True)
    result = {
        "checkpoint": str(checkpoint),
        "sha256": loaded.sha256,
        "train_encoder": loaded.identity_encoder,
        "judge_encoder": judge,
        "pairs": len(usable),
        "clips": [str(c) for c in clips],
        "rows": [asdict(r) for r in rows],
        "identity_gain": identity_gain(rows, loaded.identity_encoder, judge),
    }
    _write(out / "eval.json", json.dumps(result, indent=2))
    table = markdown_table(rows, loaded.identity_encoder, judge)
    _write(out / "eval.md", table + gain_lines(result["identity_gain"]))
    return rows


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
