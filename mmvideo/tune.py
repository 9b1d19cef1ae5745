"""``mmvideo tune``: fine-tune a checkpoint on one shot (the actor's photos + the target footage).

Three steps, each reusing the code that already does it:

1. **faces** — the clips go through the swap's own analysis (``pipeline.analyze`` and
   ``plan_faces``: same detector, tracker, smoothing and target-selection flags), so the tune
   trains on exactly the faces ``mmvideo swap`` will replace; the source photos are found as
   ``swap`` finds its ``--source`` (``source_face_config`` + ``pick_face``). Each face becomes a
   training sample through ``train.preprocess.face_fields`` and is stored as shards
   (``train/shards.py``) in the state folder beside ``--out`` (``shot.pt.tune/``).
2. **train** — ``train.trainer``'s models, step and losses (eq. 12: self-reconstruction, both
   cross swaps with the dlib identity loss, AFSA adversarial terms; the [ours] perceptual term)
   from the base checkpoint's weights (``init_weights_from``), pairs drawn by ``train.data`` from
   two identities, "target" (the clip's faces) and "source" (the actor's). State checkpoints
   every ``--checkpoint-every`` steps (``save_training_state``: resume is bit-exact).
3. **export** — the EMA generator as a ``magicmask.checkpoint`` file (atomic, SHA-256), with a
   record of what it was tuned on under ``meta["tune"]`` (``mmvideo models describe`` shows it).

FaceNet is the judge of identity (``bench/quality.py``): it is never a loss here and never
chooses a checkpoint.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from magicmask import checkpoint
from magicmask.config import create_config, list_configs
from magicmask.face.analyzer import pick_face
from magicmask.face.heatmaps import landmark_heatmaps
from magicmask.face.identity import build_identity_encoder
from magicmask.face.image import load_image
from magicmask.face.types import Face
from magicmask.inference import Swapper
from magicmask.losses import LossConfig
from mmcore.atomic import atomic_output, write_errors, write_json_atomic
from mmcore.errors import (
    InvalidInput,
    MissingInput,
    ModelError,
    NoFaceFound,
    OutputError,
)
from mmcore.hashing import file_sha256
from mmvideo import pipeline
from mmvideo.config import SwapConfig
from mmvideo.generate import load_models
from mmvideo.io.media import open_reader, probe_media
from mmvideo.post.tag import make_tag
from mmvideo.preview import PreviewRow, contact_sheet, write_sheet
from mmvideo.progress import bar
from train import preprocess
from train.config import TrainConfig
from train.data import PairSampler, StepDataset, load_faces, redraw_masks, step_loader
from train.fit import data_fingerprint
from train.preprocess import face_fields, rows_to_shard
from train.shards import read_shard, write_shard
from train.trainer import (
    architecture,
    build_models,
    checkpoint_path,
    init_weights_from,
    latest_checkpoint,
    load_training_state,
    prune_checkpoints,
    save_training_state,
    train_step,
)

log = logging.getLogger(__name__)

TARGET, SOURCE = "target", "source"
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
PREVIEW_ROWS = 4
# without --minutes or --steps: the judge's gain peaks early and falls as the shot's discriminators
# learn the target actor; session 9, six clips at 100 / 200 / 300 steps (docs/benchmarks.md): 200
# is level with 300 on the frontal (+0.417 vs +0.431) and turn_03 (+0.454 vs +0.447) cases, above it
# on turn_01 (+0.251 vs +0.223), Jackie Chan (+0.349 vs +0.321) and the glasses clip (+0.312 vs
# +0.304), with sharpness >= 0.9 and the same-person SSIM 0.937 (at 100, sharpness falls to 0.86)
DEFAULT_STEPS = 200
# settings added after tunes were already on disk, at the value those tunes trained with: their
# records lack the key, and --resume with this value continues them
UNRECORDED_SETTINGS = {"identity_augment": 0.0, "lambda_texture": 0.0}
# the swap settings a tuned checkpoint carries (``mmvideo.config.ModelSettings``): the paste mask
# over the brows. The presets' 0 stops at the brow line, so the feathered edge keeps most of the
# target's brows; with a tuned model's the judge's gain rose by +0.07 and +0.15 on a frontal and a
# head-turn clip, level on others, while 0.2-0.3 show the forehead's mottling
# (docs/benchmarks.md, session 8)
SWAP_SETTINGS = {"mask_forehead": 0.1}
# what a failed write raises: torch's writer reports a full disk as a RuntimeError
WRITE_ERRORS = (OSError, RuntimeError)


@dataclass(frozen=True)
class TuneSettings:
    """What decides the computation besides the inputs (``resume`` refuses a change)."""

    lr: float = 2e-4
    batch_size: int = 4  # pairs per step
    seed: int = 0
    same_identity_prob: float = 0.2
    mask_forehead: float = 0.0  # as the embedded model's stage 3: forehead under L_Recon
    lambda_perceptual: float = 1.0
    lambda_feature_match: float = 1.0
    detail_path: bool = True  # [ours] target detail path into the decoder (zero-initialised)
    # generator sub-modules kept at the base's weights; the base's detail path by default: trained
    # on one shot it carries the target's own identity back (docs/training.md §6)
    freeze: tuple[str, ...] = ("detail",)
    max_frames: int = 200  # target faces sampled per clip (evenly over the frames with a face)
    source_stride: int = 5  # --source-video: every N-th frame
    checkpoint_every: int = 25
    lambda_id: float = 10.0  # eq. 7's λ_IS (the paper's 5; 10 as the embedded model's fine-tune)
    # eq. 12's λ_AFSA (the paper's 1). The discriminators start fresh and learn the shot, where
    # nearly every real face is the target actor's: at full weight they pull the cross swap back
    # toward the target (judge's gain +0.262 at 300 steps, head turn +0.134); at 0.2 +0.272 and
    # +0.174, realism level; at 0.05 or 0 more identity with blotches (docs/benchmarks.md)
    lambda_afsa: float = 0.2
    # [ours] eq. 7 on a random view of the swap (``magicmask.losses.identity_view``): without it
    # the identity loss pays for pixel patterns that move dlib's code, the blotches. 250 steps,
    # frontal cross case: judge's gain +0.275 at 0, +0.316 at 1, +0.342 at 2 with the band ratio
    # 1.11 / 1.13 / 1.17 (docs/benchmarks.md, session 7)
    identity_augment: float = 2.0
    # [ours] the cross swap's skin statistics against its target's (``magicmask.losses.texture_loss``):
    # the speckles, streaks and dark patches the identity loss leaves on the skin fade. Session 10,
    # six clips, 200 steps: chip SSIM up on every row (same person 0.939 -> 0.943), the band ratio
    # nearer 1 on five, sharpness down 0.01-0.07 (all >= 0.90), the judge's gain -0.037 to +0.021
    # (docs/benchmarks.md)
    lambda_texture: float = 1.0


@dataclass
class FaceData:
    """The shot's training faces on disk, and what the run's record says about them."""

    folder: Path
    sources: list[dict]
    clips: list[dict]
    target_faces: int
    source_faces: int
    seconds: float
    previews: list[tuple[np.ndarray, list]] = field(default_factory=list)  # (frame, planned faces)


def state_folder(out: Path) -> Path:
    """Where a tune keeps its faces and state checkpoints: beside the output, ``OUT.tune``."""
    return out.with_name(out.name + ".tune")


def source_files(sources: tuple[str, ...], source_dir: str | None) -> list[Path]:
    """The source photos: ``--source`` files, then the images of ``--source-dir`` in name order."""
    files = [Path(s) for s in sources]
    if source_dir:
        folder = Path(source_dir)
        if not folder.is_dir():
            raise MissingInput(f"{folder}: source folder not found (--source-dir)")
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not found:
            raise InvalidInput(f"{folder}: no images in the source folder (--source-dir)")
        files += found
    for f in files:
        if not f.is_file():
            raise MissingInput(f"{f}: source image not found")
    return files


# -- 1. faces -----------------------------------------------------------------------------------


def _row(fields: dict, label: int, frame: int, origin: str) -> dict:
    # label indexes the shard's own identities: one per shard here (target, source)
    return {**fields, "label": label, "frame": frame, "origin": origin}


def _clip_faces(
    clip: str, cfg: SwapConfig, swap_models, analyzer, reference, max_frames: int, previews: list
):
    """Training rows of the faces ``swap`` would replace in ``clip`` (its analysis and target
    selection, called, not copied), at most ``max_frames`` frames spread over the clip."""
    info = probe_media(clip)
    analysis = pipeline.analyze(clip, info, cfg, analyzer, swap_models, 0, info.video.frames)
    plan, selected, _ = pipeline.plan_faces(analysis, cfg, reference, 0, info.video.frames)
    if not plan:
        raise NoFaceFound(
            f"{clip}: no face found in the clip (check the target flags: --target-face, --track-id)"
        )
    frames = sorted(plan)
    keep = {frames[int(i)] for i in np.linspace(0, len(frames) - 1, min(max_frames, len(frames)))}
    shown = {frames[int(i)] for i in np.linspace(0, len(frames) - 1, PREVIEW_ROWS)}
    rows = []
    with open_reader(clip, info, start=min(keep), stop=max(keep) + 1) as reader:
        for frame in reader:
            if frame.index not in keep:
                continue
            image = (
                frame.image
                if frame.image.dtype == np.uint8
                else (frame.image >> 8).astype(np.uint8)
            )
            faces = [f for _, f in plan[frame.index]]
            for face in faces:
                rows.append(
                    _row(
                        face_fields(image, face.landmarks, face.landmarks_3d), 0, frame.index, clip
                    )
                )
            if frame.index in shown and len(previews) < PREVIEW_ROWS:
                previews.append((image, faces))
    record = {
        "path": str(Path(clip).resolve()),
        "sha256": file_sha256(clip),
        "frames": info.video.frames,
        "frames_with_face": len(frames),
        "frames_used": len(keep),
        "tracks": selected,
    }
    return rows, record


def _source_faces(
    files: list[Path], video: str | None, cfg: SwapConfig, stills, frames_analyzer, stride: int
):
    """Training rows of the actor: each photo's face as ``swap`` picks its ``--source`` face
    (no face is an error naming the photo), and the largest face of every ``stride``-th frame
    of ``--source-video`` (frames without one are skipped)."""
    rows, records = [], []
    for path in files:
        image = load_image(path)
        face = pick_face(stills.detect(image), cfg.detect.source_face_index, name=str(path))
        rows.append(
            _row(preprocess.face_fields(image, face.landmarks, face.landmarks_3d), 0, -1, str(path))
        )
        records.append({"path": str(path.resolve()), "sha256": file_sha256(path)})
    if video:
        used = 0
        for k, image in preprocess._frames(Path(video), stride, 0):
            faces = frames_analyzer.detect(image)
            boxes = np.array([f.box for f in faces], np.float32).reshape(-1, 4)
            best = preprocess.pick_face(boxes, image.shape[:2], cfg.detect.min_face_size)
            if best is None:
                continue
            face = faces[best]
            rows.append(
                _row(preprocess.face_fields(image, face.landmarks, face.landmarks_3d), 0, k, video)
            )
            used += 1
        if not used:
            raise NoFaceFound(f"{video}: no face found in the source video")
        records.append(
            {"path": str(Path(video).resolve()), "sha256": file_sha256(video), "frames_used": used}
        )
    return rows, records


def prepare_faces(
    folder: Path,
    clips: tuple[str, ...],
    sources: list[Path],
    source_video: str | None,
    cfg: SwapConfig,
    settings: TuneSettings,
    base: str,
    device: str = "cpu",
    min_frames: int = 8,
) -> FaceData:
    """Find, select and crop the shot's faces; write them as two shards into ``folder/data``."""
    t0 = time.perf_counter()
    swap_models = load_models(
        base, device
    )  # identity codes for tracking and --target-face, as swap
    frames_analyzer, stills = pipeline.analyzers(cfg, device)
    source_rows, source_records = _source_faces(
        sources, source_video, cfg, stills, frames_analyzer, settings.source_stride
    )
    reference = None
    if cfg.track.target_face:
        reference = pipeline.source_identity(cfg.track.target_face, stills, swap_models)[0].numpy()
    target_rows, clip_records, previews = [], [], []
    for clip in clips:
        rows, record = _clip_faces(
            clip, cfg, swap_models, frames_analyzer, reference, settings.max_frames, previews
        )
        target_rows += rows
        clip_records.append(record)
    if len(target_rows) < min_frames:
        raise InvalidInput(
            f"{', '.join(clips)}: only {len(target_rows)} usable target faces (at least {min_frames} needed)"
        )
    data = folder / "data"
    key = json.dumps(
        [source_records, clip_records, settings.max_frames, settings.source_stride], sort_keys=True
    )
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    shards = {
        name: rows_to_shard(rows, [name], [], 224, "mmvideo-tune")
        for name, rows in ((TARGET, target_rows), (SOURCE, source_rows))
    }
    with write_errors(folder, "write the tune's faces", errors=WRITE_ERRORS):
        data.mkdir(parents=True, exist_ok=True)
        for name, shard in shards.items():
            write_shard(data / f"shard-{digest}-{name}.npz", shard)
        save_previews(folder / "previews.npz", previews)
    return FaceData(
        data,
        source_records,
        clip_records,
        len(target_rows),
        len(source_rows),
        time.perf_counter() - t0,
        previews,
    )


def save_previews(path: Path, previews: list) -> None:
    """The preview frames and their planned faces, so a resumed tune shows the same rows."""
    arrays = {}
    for k, (image, faces) in enumerate(previews):
        arrays[f"image_{k}"] = image
        for j, f in enumerate(faces):
            arrays[f"box_{k}_{j}"], arrays[f"lm_{k}_{j}"] = f.box, f.landmarks
            if f.landmarks_3d is not None:
                arrays[f"lm3_{k}_{j}"] = f.landmarks_3d
    with atomic_output(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def load_previews(path: Path) -> list:
    with np.load(path) as z:
        out = []
        for k in range(PREVIEW_ROWS):
            if f"image_{k}" not in z:
                break
            faces, j = [], 0
            while f"lm_{k}_{j}" in z:
                faces.append(Face(z[f"box_{k}_{j}"], 1.0, z[f"lm_{k}_{j}"], z.get(f"lm3_{k}_{j}")))
                j += 1
            out.append((z[f"image_{k}"], faces))
    return out


# -- 2. train -----------------------------------------------------------------------------------


def check_base(path: Path):
    """The base checkpoint, refused in one line if the tune cannot train it: a config that is
    not a registered one, or an identity encoder other than dlib's (FaceNet is the judge)."""
    base = checkpoint.load_checkpoint(path)
    if base.identity_encoder != "dlib-resnet":
        raise ModelError(
            f"{path}: trained with identity encoder {base.identity_encoder}; tune trains with dlib-resnet"
            " (FaceNet is the judge, never a loss)"
        )
    name = base.config.name
    if name not in list_configs():
        raise ModelError(
            f"{path}: model config {name!r} is not a registered one ({', '.join(list_configs())})"
        )
    own = create_config(
        name, identity_dim=base.config.identity_dim, detail_path=base.config.detail_path
    )
    if architecture(own.to_dict()) != architecture(base.config.to_dict()):
        raise ModelError(
            f"{path}: model config differs from the registered {name!r}; tune cannot rebuild it"
        )
    return base


def train_config(settings: TuneSettings, base_cfg, base_path: Path, steps: int):
    return TrainConfig(
        model=base_cfg.name,
        model_overrides=(("detail_path", settings.detail_path or base_cfg.detail_path),),
        identity_encoder="dlib-resnet",
        batch_size=settings.batch_size,
        steps=steps,
        lr=settings.lr,
        seed=settings.seed,
        same_identity_prob=settings.same_identity_prob,
        checkpoint_every=settings.checkpoint_every,
        keep_checkpoints=2,
        mask_forehead=settings.mask_forehead,
        init_from=str(base_path.resolve()),
        lambda_feature_match=settings.lambda_feature_match,
        lambda_perceptual=settings.lambda_perceptual,
        lambda_texture=settings.lambda_texture,
        loss=LossConfig(
            lambda_id=settings.lambda_id,
            lambda_afsa=settings.lambda_afsa,
            identity_augment=settings.identity_augment,
        ),
    )


def freeze(models, names: tuple[str, ...]) -> None:
    """Keep generator sub-modules (``visual``, ``geometric``, ``decoder``, ``detail`` or deeper
    dotted names) at the base's weights: AdamW skips parameters without gradients. A part this
    architecture leaves out (set to None, as ``detail`` with ``--no-detail-path`` on a base
    without one) has no weights to keep, so naming it is no error: the default stays valid."""
    modules = dict(models.generator.named_modules())
    for name in names:
        if name and name in modules:
            modules[name].requires_grad_(False)
        elif not _left_out(modules, name):
            raise InvalidInput(
                f"--freeze {name}: no such generator module ({', '.join(n for n, _ in models.generator.named_children())})"
            )


def _left_out(modules: dict, name: str) -> bool:
    """Whether ``name`` is a sub-module slot that its parent module holds as None."""
    parent, _, leaf = name.rpartition(".")
    return bool(leaf) and parent in modules and getattr(modules[parent], leaf, False) is None


@dataclass
class TuneResult:
    steps: int
    seconds: float  # training time, all sessions of this tune
    last_losses: dict[str, float]
    stopped: str  # "steps" | "minutes"


def _elapsed_path(state: Path) -> Path:
    return state.with_suffix(".json")


def save_state(path: Path, models, tcfg, step: int, fingerprint: str, elapsed: float) -> None:
    """A state checkpoint and its sidecar (training seconds so far); a full disk is one line and
    leaves the previous checkpoint as it was (both files are written to a temp name first)."""
    try:
        with write_errors(
            path, "write the tune's state", "; the previous checkpoint is kept", WRITE_ERRORS
        ):
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(_elapsed_path(path)) as tmp:
                tmp.write_text(json.dumps({"step": step, "elapsed_s": elapsed}))
            save_training_state(path, models, tcfg, step, fingerprint)
    except OutputError:
        _elapsed_path(path).unlink(missing_ok=True)
        raise


def _prune(run: Path, keep: int) -> None:
    prune_checkpoints(run, keep)
    for side in (run / "checkpoints").glob("step-*.json"):
        if not side.with_suffix(".pt").exists():
            side.unlink(missing_ok=True)


def train(
    run: Path,
    tcfg,
    base_path: Path,
    resume: bool,
    steps: int | None,
    seconds: float | None,
    settings: TuneSettings,
    on_step=None,
    threads: int = 1,
    on_start=None,
) -> tuple[TuneResult, object]:
    """Train the run in ``run`` until ``steps`` or ``seconds`` of training (all sessions) are
    done. ``on_start(step, elapsed)`` is called once where training starts (0, or the resumed
    state's), ``on_step(step, elapsed, losses, models)`` after every step."""
    torch.set_num_threads(threads)
    device = torch.device("cpu")
    encoder = build_identity_encoder(tcfg.identity_encoder, device="cpu")
    models = build_models(tcfg, encoder, device)
    data = run / "data"
    faces = load_faces(data, models.cfg.image_size, 112)
    redraw_masks(faces, tcfg.mask_forehead)
    fingerprint = data_fingerprint(data, ())
    start, elapsed0 = 0, 0.0
    latest = latest_checkpoint(run) if resume else None
    if latest is not None:
        start = load_training_state(latest, models, tcfg, fingerprint)
        side = _elapsed_path(latest)
        elapsed0 = json.loads(side.read_text())["elapsed_s"] if side.is_file() else 0.0
        log.info("resumed %s at step %d (%.0f s trained)", latest, start, elapsed0)
    else:
        init_weights_from(base_path, models)
    freeze(models, settings.freeze)
    sampler = PairSampler(faces, tcfg.batch_size, tcfg.seed, tcfg.same_identity_prob)
    heat = functools.partial(landmark_heatmaps, size=models.cfg.image_size)
    total = steps if steps is not None else 10**9
    loader = step_loader(StepDataset(sampler, heat, start, max(0, total - start)), 0)
    losses: dict[str, float] = {}
    step, elapsed, stopped = start, elapsed0, "steps"
    if on_start is not None:
        on_start(start, elapsed0)
    t0 = time.perf_counter()
    if seconds is not None and elapsed >= seconds:
        return TuneResult(step, elapsed, losses, "minutes"), models
    for step, batch in enumerate(loader, start + 1):
        losses = train_step(models, tcfg, batch, step).losses
        elapsed = elapsed0 + time.perf_counter() - t0
        done = seconds is not None and elapsed >= seconds
        if step % tcfg.checkpoint_every == 0 or step == total or done:
            save_state(checkpoint_path(run, step), models, tcfg, step, fingerprint, elapsed)
            _prune(run, tcfg.keep_checkpoints)
        if on_step is not None:
            on_step(step, elapsed, losses, models)
        if done:
            stopped = "minutes"
            break
    return TuneResult(step, elapsed, losses, stopped), models


# -- progress and previews --------------------------------------------------------------------


class TuneProgress:
    """A bar over steps (``--steps``) or training seconds (``--minutes``) with the loss and an
    ETA (plain lines in a log, ``progress.bar``), or a JSON line per second to ``json_sink``
    (the command's stdout)."""

    def __init__(
        self,
        steps: int | None,
        seconds: float | None,
        json_sink: Callable[[str], None] | None,
        show: bool,
    ):
        self.steps, self.seconds, self.json_sink, self.show = (
            steps,
            seconds,
            json_sink,
            show and json_sink is None,
        )
        self._last_json = 0.0
        self.bar = None

    def start(self, step: int, elapsed: float) -> None:
        """The bar counts this session's work only, so a resumed tune's rate and ETA are right."""
        self._step0, self._elapsed0 = step, elapsed
        if self.steps is not None:
            total, unit = self.steps - step, "step"
        else:
            total, unit = max(0, int(self.seconds - elapsed)), "second"
        desc = f"tune (resumed at step {step})" if step else "tune"
        self.bar, self._done = bar(total, desc, unit, show=self.show), 0

    def update(self, step: int, elapsed: float, losses: dict[str, float]) -> None:
        if self.steps is not None:
            now_done = step - self._step0
        else:
            now_done = int(min(elapsed, self.seconds) - self._elapsed0)
        if now_done > self._done:
            self.bar.update(now_done - self._done)
            self._done = now_done
        self.bar.set_postfix(
            loss=f"{losses['total']:.3f}", id=f"{losses['identity']:.3f}", refresh=False
        )
        if self.json_sink is not None and time.monotonic() - self._last_json >= 1.0:
            self._last_json = time.monotonic()
            self.json_sink(json.dumps(self.record(step, elapsed, losses)))

    def record(self, step: int, elapsed: float, losses: dict[str, float]) -> dict:
        if self.steps is not None:
            rate = step / elapsed if elapsed > 0 else 0.0
            eta = (self.steps - step) / rate if rate > 0 else None
        else:
            eta = max(0.0, self.seconds - elapsed)
        return {
            "phase": "tune",
            "step": step,
            "steps": self.steps,
            "elapsed_s": round(elapsed, 1),
            "eta_s": None if eta is None else round(eta, 1),
            "losses": {k: round(v, 5) for k, v in losses.items()},
        }

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def write_preview(
    path: Path,
    previews: list,
    models,
    encoder,
    source_crop: np.ndarray,
    cfg: SwapConfig,
    title: str,
):
    """original | current swap for a few frames of the shot, through the pipeline's ``swap_frame``
    with the EMA weights as they are now."""
    generator = copy.deepcopy(models.ema).eval()
    swap_models = Swapper(generator, encoder)
    e_s = torch.from_numpy(swap_models.embed(source_crop[None]))
    masks = pipeline.mask_models(cfg, swap_models.device)
    rows = [
        PreviewRow(k, None, image, pipeline.swap_frame(image, faces, swap_models, e_s, cfg, masks))
        for k, (image, faces) in enumerate(previews)
    ]
    write_sheet(path, contact_sheet(rows, title), make_tag(None).to_text())


# -- 3. export ----------------------------------------------------------------------------------


def export(out: Path, models, record: dict) -> str:
    """The EMA generator with the tune's record, written atomically; returns its SHA-256."""
    meta = {"steps": record["steps"], "weights": "ema", "tune": record, "swap": SWAP_SETTINGS}
    with write_errors(out, "write the tuned checkpoint", errors=WRITE_ERRORS):
        return checkpoint.save_checkpoint(out, models.ema, models.cfg, models.encoder.name, meta)


def describe_record(meta: dict) -> list[str]:
    """``models describe``'s lines for a tuned checkpoint's record (none for other checkpoints)."""
    rec = meta.get("tune")
    if not rec:
        return []
    lines = [
        (
            f"tuned: {rec['steps']} steps, {rec['minutes']:.1f} min of training, "
            f"{rec['target_faces']} target faces, {rec['source_faces']} source faces"
        ),
        f"  base: {rec['base']['path']} (sha256 {rec['base']['sha256'][:16]}...)",
    ]
    lines += [f"  source: {s['path']} (sha256 {s['sha256'][:16]}...)" for s in rec["sources"]]
    lines += [
        f"  clip: {c['path']} (sha256 {c['sha256'][:16]}...), {c['frames_used']} of {c['frames']} frames, "
        f"tracks {c['tracks']}"
        for c in rec["clips"]
    ]
    lines.append(f"  settings: {json.dumps(rec['settings'], sort_keys=True)}")
    return lines


# -- the command ---------------------------------------------------------------------------------


def open_run(
    run: Path,
    clips,
    files: list[Path],
    source_video: str | None,
    cfg: SwapConfig,
    settings: TuneSettings,
    base_path: Path,
    base_sha: str,
    resume: bool,
    min_frames: int,
) -> tuple[FaceData, dict]:
    """The tune's faces and its ``record.json``: read back from the state folder ``run`` when
    resuming (after checking the inputs are the same), else prepared into a new one."""
    record_path = run / "record.json"
    if resume:
        faces = _resumed_faces(run, record_path, clips, files, source_video, settings, base_sha)
    else:
        with write_errors(run, "create the tune's state folder"):
            run.mkdir()
        try:
            faces = prepare_faces(
                run,
                clips,
                files,
                source_video,
                cfg,
                settings,
                str(base_path),
                min_frames=min_frames,
            )
            write_json_atomic(record_path, {
                "sources": faces.sources, "clips": faces.clips,
                "target_faces": faces.target_faces, "source_faces": faces.source_faces,
                "data_seconds": faces.seconds,
                "base": {"path": str(base_path.resolve()), "sha256": base_sha},
                "settings": _settings_dict(settings),
            })  # fmt: skip
        except BaseException:
            _remove_tree(run)  # nothing trained yet: leave no half-made state folder behind
            raise
    return faces, json.loads(record_path.read_text())


def _settings_dict(settings: TuneSettings) -> dict:
    return json.loads(json.dumps(asdict(settings)))


def _remove_tree(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def first_source_crop(run: Path) -> np.ndarray:
    shard = read_shard(next((run / "data").glob(f"shard-*-{SOURCE}.npz")))
    return shard.source[0]


def _resumed_faces(
    run: Path, record_path: Path, clips, files, source_video, settings, base_sha
) -> FaceData:
    """The faces of the tune being resumed, after checking that its inputs are the same files."""
    if not record_path.is_file():
        raise InvalidInput(f"{run}: no record.json; not a tune state folder")
    rec = json.loads(record_path.read_text())
    given = sorted(file_sha256(f) for f in [*files, *([source_video] if source_video else [])])
    if sorted(s["sha256"] for s in rec["sources"]) != given:
        raise InvalidInput(f"{run}: --resume with other source images than the tune's")
    if sorted(c["sha256"] for c in rec["clips"]) != sorted(file_sha256(c) for c in clips):
        raise InvalidInput(f"{run}: --resume with other clips than the tune's")
    if rec["base"]["sha256"] != base_sha:
        raise InvalidInput(f"{run}: --resume with another base checkpoint than the tune's")
    # how often state is saved does not change what is computed
    diff = sorted(
        k
        for k, v in _settings_dict(settings).items()
        if rec["settings"].get(k, UNRECORDED_SETTINGS.get(k)) != v and k != "checkpoint_every"
    )
    if diff:
        raise InvalidInput(
            f"{run}: --resume with settings that differ from the tune's ({', '.join(diff)})"
        )
    previews = load_previews(run / "previews.npz")
    return FaceData(
        run / "data",
        rec["sources"],
        rec["clips"],
        rec["target_faces"],
        rec["source_faces"],
        0.0,
        previews,
    )
