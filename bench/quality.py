"""Swap quality end to end: `mmvideo swap` on real clips, realism beside identity (docs/quality.md).

One row per (clip, source photo) and model: means over the frames where a face is found in the
original of chip SSIM, sharpness ratio, band-energy ratio (grey and colour), pose error, temporal
jitter ratio, and the identity of the face to the source photo (FaceNet judge cosine and dlib
distance, original → swap). Same-person rows put a photo of the clip's own actor in (the fidelity test: a faithful model
keeps SSIM near 1); cross-person rows another actor. Writes a contact sheet per row
(original | swap [| baseline swap] | source), small PNGs under ``docs/quality/``.

    .venv/bin/python bench/quality.py                          # embedded checkpoint, balanced
    .venv/bin/python bench/quality.py --checkpoint new.pt      # new.pt beside the embedded one
    .venv/bin/python bench/quality.py --swap-args "--mask-feather 12" --baseline embedded

The swap is encoded with ``--crf 0`` (lossless luma) so the encoder's loss is not counted as the
model's. ``--baseline`` (default: the embedded checkpoint whenever ``--checkpoint`` or
``--swap-args`` is given) runs the same cases with the same preset for a side-by-side table;
``--baseline-swap-args`` gives the baseline its own flags (a compose option before/after).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("MMVIDEO_TEST_DATA", REPO.parent / "shared" / "data"))
MMVIDEO = [sys.executable, "-m", "mmvideo"]
TILE = 160  # contact-sheet tile side, px


@dataclass(frozen=True)
class Case:
    clip: str
    source: str  # a still in DATA, or "frame:N" = frame N of the clip itself
    same_person: bool

    @property
    def name(self) -> str:
        src = self.source.replace("frame:", "own frame ").rsplit(".", 1)[0]
        return f"{Path(self.clip).stem.replace('talking_head_', '')} ← {src.replace('id_', '')}"


CASES = (
    Case("talking_head_obama_address_01.mp4", "id_obama_01.jpg", True),
    Case("talking_head_obama_news_01.mp4", "id_obama_02.jpg", True),
    # no labelled still of him: a frame from later in the same clip
    Case("talking_head_jackie_chan_01.mp4", "frame:120", True),
    Case("talking_head_jackie_chan_01.mp4", "id_biden_02.jpg", False),
    Case("talking_head_obama_address_01.mp4", "id_biden_02.jpg", False),
    Case("talking_head_glasses_02.mp4", "id_kit_harington_02.jpeg", False),
    # head turns: where the model's dark patches show most
    Case("talking_head_turn_01.mp4", "id_biden_02.jpg", False),
    Case("talking_head_turn_03.mp4", "id_biden_02.jpg", False),
)

MEASURES = (  # (field, header, format)
    ("chip_ssim", "chip SSIM", "{:.3f}"),
    ("sharpness_ratio", "sharpness", "{:.2f}"),
    ("band_ratio", "band", "{:.2f}"),
    ("color_band_ratio", "colour band", "{:.2f}"),
    ("pose_err", "pose err °", "{:.1f}"),
    ("jitter_ratio", "jitter", "{:.2f}"),
    ("facenet_gain", "FaceNet gain", "{:+.3f}"),
    ("dlib_drop", "dlib dist drop", "{:+.3f}"),
    ("dlib_same", "dlib < 0.6", "{:.0%}"),
)


@dataclass
class Original:
    """What the clip's own frames give, measured once and shared by every model's run."""

    frames: list[np.ndarray]
    faces: list  # magicmask Face or None per frame
    embeddings: dict[int, object] = field(default_factory=dict)


@dataclass
class Row:
    case: Case
    model: str
    frames: int  # frames with a face in the original
    face_px: float  # mean face size (eye distance × 2.5), px
    values: dict[str, float]
    sheet: np.ndarray  # the swap's tile


def read_frames(path: Path, stop: int | None) -> list[np.ndarray]:
    from mmvideo.io.decode import VideoReader

    with VideoReader(path, stop=stop) as reader:
        return [f.image for f in reader]


def face_tile(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """A TILE×TILE square around the face (1.8× the landmarks' extent), edges repeated."""
    lo, hi = landmarks.min(0), landmarks.max(0)
    c, half = (lo + hi) / 2, 0.9 * float(max(hi - lo))
    m = np.float64([[TILE / (2 * half), 0, 0], [0, TILE / (2 * half), 0]])
    m[:, 2] = TILE / 2 - m[:, :2] @ c
    return cv2.warpAffine(
        image, m, (TILE, TILE), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
    )


def write_sheet(path: Path, tiles: list[np.ndarray]) -> None:
    """One row of tiles as an adaptive-palette PNG (≈ 30–60 KB), written atomically."""
    img = Image.fromarray(np.concatenate(tiles, axis=1)).quantize(
        colors=256, method=Image.Quantize.MEDIANCUT
    )
    tmp = path.with_name(f".{path.name}.tmp")
    img.save(tmp, format="PNG", optimize=True)
    tmp.replace(path)


def swap(
    case: Case,
    source: Path,
    checkpoint: str | None,
    preset: str,
    stop: int,
    extra: list[str],
    out: Path,
):
    args = MMVIDEO + [
        "swap",
        "--source",
        str(source),
        "--in",
        str(DATA / case.clip),
        "--out",
        str(out),
    ]
    args += ["--preset", preset, "--stop", str(stop), "--crf", "0", "--no-progress"]
    if checkpoint:
        args += ["--checkpoint", checkpoint]
    t = time.perf_counter()
    proc = subprocess.run(args + extra, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(
            f"swap failed ({proc.returncode}): {shlex.join(args + extra)}\n{proc.stderr[-2000:]}"
        )
    return time.perf_counter() - t


def measure(
    case, original: Original, swapped: list[np.ndarray], source_emb, analyzer, judge
) -> dict[str, float]:
    from magicmask import quality
    from magicmask.face.pose import estimate_pose

    idx = [k for k, f in enumerate(original.faces) if f is not None and k < len(swapped)]
    real, poses, lm_o, lm_s = [], [], [], []
    for k in idx:
        face = original.faces[k]
        real.append(quality.realism(original.frames[k], swapped[k], face.landmarks))
        redo = analyzer.landmarks(swapped[k], face.box[None])[0]
        shape = swapped[k].shape[:2]
        poses.append(
            quality.pose_abs_error(
                estimate_pose(redo.landmarks, shape),
                estimate_pose(face.landmarks, shape),
            )
        )
        lm_o.append(face.landmarks)
        lm_s.append(redo.landmarks)
    missing = [k for k in idx if k not in original.embeddings]
    for k, e in zip(
        missing,
        judge.embed(
            [original.frames[k] for k in missing],
            [original.faces[k].landmarks for k in missing],
        ),
    ):
        original.embeddings[k] = e
    ident = quality.identity(
        source_emb,
        [original.embeddings[k] for k in idx],
        judge.embed([swapped[k] for k in idx], lm_s),
    )
    # jitter over consecutive frames only: a frame without a face breaks the sequence
    valid = np.zeros(max(idx) + 1, bool)
    valid[idx] = True
    full_o = np.zeros((len(valid), 68, 2))
    full_s = np.ones((len(valid), 68, 2))
    full_o[idx], full_s[idx] = np.stack(lm_o), np.stack(lm_s)
    full_o[~valid] = full_o[idx[0]]  # any finite stand-in; never counted
    full_s[~valid] = full_s[idx[0]]
    return {
        "chip_ssim": float(np.mean([r.chip_ssim for r in real])),
        "sharpness_ratio": float(np.nanmean([r.sharpness_ratio for r in real])),
        "band_ratio": float(np.nanmean([r.band_ratio for r in real])),
        "color_band_ratio": float(np.nanmean([r.color_band_ratio for r in real])),
        "pose_err": float(np.mean(poses)),
        "jitter_ratio": quality.jitter_ratio(full_s, full_o, valid),
        "facenet_gain": ident.facenet_gain,
        "dlib_drop": ident.dlib_distance_drop,
        "dlib_same": ident.dlib_same_swap,
        "facenet_original": ident.facenet_original,
        "dlib_dist_original": ident.dlib_dist_original,
    }


def table(rows: list[Row]) -> str:
    heads = ["case", "kind", "model", "frames", "face px"] + [h for _, h, _ in MEASURES]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for r in rows:
        kind = "same person" if r.case.same_person else "cross"
        cells = [r.case.name, kind, r.model, str(r.frames), f"{r.face_px:.0f}"]
        cells += [fmt.format(r.values[k]) for k, _, fmt in MEASURES]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="Model to measure (default: the embedded one).")
    p.add_argument("--baseline", help="Model beside it: a file, 'embedded' or 'none'.")
    p.add_argument("--preset", default="balanced")
    p.add_argument("--max-frames", type=int, default=40, help="First N frames of each clip.")
    p.add_argument(
        "--swap-args",
        default="",
        help="Extra `mmvideo swap` flags for the measured model only.",
    )
    p.add_argument(
        "--baseline-swap-args",
        default="",
        help="Extra `mmvideo swap` flags for the baseline only (e.g. a compose option off).",
    )
    p.add_argument("--cases", default="all", choices=["all", "same", "cross"])
    p.add_argument(
        "--case",
        action="append",
        default=[],
        metavar="CLIP,SOURCE,same|cross",
        help="Measure this case instead of the built-in ones (e.g. a clip a checkpoint was tuned on); repeatable.",
    )
    p.add_argument(
        "--sheets",
        type=Path,
        default=REPO / "docs" / "quality",
        help="Contact-sheet folder ('' = none).",
    )
    args = p.parse_args(argv)

    import torch

    from magicmask import quality
    from magicmask.face.analyzer import FaceAnalyzer, FaceConfig
    from magicmask.face.image import load_image

    torch.set_num_threads(2)
    baseline = args.baseline or (
        "embedded" if args.checkpoint or args.swap_args or args.baseline_swap_args else "none"
    )
    runs = [("ours", args.checkpoint, shlex.split(args.swap_args))]
    if baseline != "none":
        label = "embedded" if baseline == "embedded" else Path(baseline).name
        extra = shlex.split(args.baseline_swap_args)
        runs.append(
            (
                f"{label} {shlex.join(extra)}" if extra else label,
                None if baseline == "embedded" else baseline,
                extra,
            )
        )
    cases = [c for c in CASES if args.cases == "all" or c.same_person == (args.cases == "same")]
    if args.case:
        cases = [Case(*c.split(",")[:2], c.split(",")[2] == "same") for c in args.case]
    analyzer = FaceAnalyzer(FaceConfig(face_backend="dlib", detector="hog", detect_upsample=1))
    judge = quality.IdentityJudge()
    originals: dict[str, Original] = {}
    rows: list[Row] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for n, case in enumerate(cases):
            if case.clip not in originals:
                frames = read_frames(DATA / case.clip, args.max_frames)
                faces = [next(iter(analyzer.detect(f)), None) for f in frames]
                originals[case.clip] = Original(frames, faces)
            original = originals[case.clip]
            if case.source.startswith("frame:"):
                k = int(case.source.split(":")[1])
                still = read_frames(DATA / case.clip, k + 1)[k]
                source = tmp / f"source{n}.png"
                Image.fromarray(still).save(source)
            else:
                source = DATA / case.source
                still = load_image(source, max_side=1600)
            src_face = analyzer.detect(still)[0]
            source_emb = judge.embed([still], [src_face.landmarks])[0]
            with_face = [k for k, f in enumerate(original.faces) if f is not None]
            mid = with_face[len(with_face) // 2]
            tiles = [face_tile(original.frames[mid], original.faces[mid].landmarks)]
            face_px = float(
                np.mean(
                    [2.5 * quality.eye_distance(original.faces[k].landmarks) for k in with_face]
                )
            )
            for r, (label, ckpt, extra) in enumerate(runs):
                out = tmp / f"{n}-{r}.mp4"
                seconds = swap(case, source, ckpt, args.preset, args.max_frames, extra, out)
                swapped = read_frames(out, None)
                values = measure(case, original, swapped, source_emb, analyzer, judge)
                tile = face_tile(swapped[mid], original.faces[mid].landmarks)
                rows.append(Row(case, label, len(with_face), face_px, values, tile))
                tiles.append(tile)
                print(f"{case.name} [{label}]: swap {seconds:.1f} s", file=sys.stderr)
            tiles.append(face_tile(still, src_face.landmarks))
            if str(args.sheets) not in ("", "."):
                args.sheets.mkdir(parents=True, exist_ok=True)
                stem = f"{Path(case.clip).stem.replace('talking_head_', '')}__{Path(case.source.replace(':', '')).stem}"
                write_sheet(args.sheets / f"{stem}.png", tiles)
    minutes = (time.perf_counter() - t0) / 60
    print(
        f"\n{platform.node()} ({os.cpu_count()} cores), {time.strftime('%Y-%m-%d')}, preset {args.preset}, "
        f"first {args.max_frames} frames, {minutes:.1f} min; models: "
        + ", ".join(
            f"{label} = {ckpt or 'embedded'}{' ' + shlex.join(extra) if extra else ''}"
            for label, ckpt, extra in runs
        )
    )
    print(table(rows))
    print(
        "\nchip SSIM, sharpness and band: swap chip vs original chip (docs/quality.md); sharpness and band"
        " want 1, SSIM wants 1 on same-person rows. FaceNet gain: judge cosine to the source photo, swap"
        " minus original; dlib dist drop: original minus swap Euclidean distance; dlib < 0.6: share of"
        " swapped frames under dlib's same-person threshold."
    )


if __name__ == "__main__":
    main()
