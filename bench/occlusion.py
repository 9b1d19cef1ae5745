"""The occlusion goal of issue 15 on ``talking_head_profile_occlusion_01.mp4`` (a hand rises in
front of the lower face), end to end through ``mmvideo swap``.

    .venv/bin/python bench/occlusion.py [--preset balanced] [--checkpoint PATH] [--stop N]

The clip is swapped twice, lossless (FFV1) with the mediapipe backend and the preset's compose:
``--mask hull,hands`` and ``--mask hull``, each with ``--matte-out``. The reference hand is
found on each input frame on its own (a palm pass around MMOD's face box of frame 0, as in
tests/test_face_hands.py) and drawn as its silhouette. Printed:

- **hand kept** (the goal: ≤ 2 gray levels on average): over the frames with a reference hand,
  the mean |output − input| gray level inside the silhouette eroded 2 px; the worst frame, the
  largest pixel change and the share of those pixels changed by more than 2;
- **hole**: the face left unswapped away from the hand, pixels per frame where the hull's matte
  is ≥ 0.5, the hands' matte < 0.5 and the reference silhouette grown by 6 px does not reach (a
  cut-out that lags the hand or outlives it); the largest over all frames and the frames with one
  of over 20 px;
- **flicker**: ``edge_flicker`` of the cut-out (hull matte − hands matte) over the whole clip,
  gray levels at its edge (a hand that moves changes it there too; compare runs).

Run on another tree (``PYTHONPATH=/other/tree``) for a before/after: the swaps run the
``mmvideo`` that Python imports.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("MMVIDEO_TEST_DATA", REPO.parent / "shared" / "data"))
CLIP = "talking_head_profile_occlusion_01.mp4"
SOURCE = "id_obama_01.jpg"
HOLE_MARGIN = 6  # px: the mask's 4 px growth plus 2 of landmark noise between two passes


def swap(mask: str, out: Path, matte: Path, args: argparse.Namespace) -> float:
    cmd = [sys.executable, "-m", "mmvideo", "swap", "--source", str(DATA / SOURCE)]
    cmd += ["--in", str(DATA / CLIP), "--out", str(out), "--preset", args.preset]
    cmd += ["--face-backend", "mediapipe", "--mask", mask, "--codec", "ffv1", "--no-progress"]
    cmd += ["--matte-out", str(matte / "matte.%04d.png"), "--stop", str(args.stop)]
    if args.checkpoint:
        cmd += ["--checkpoint", args.checkpoint]
    t = time.perf_counter()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"swap failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t


def mattes(folder: Path) -> list[np.ndarray]:
    files = sorted(folder.glob("matte.*.png"))
    return [cv2.imread(str(f), cv2.IMREAD_UNCHANGED).astype(np.float32) / 65535.0 for f in files]


def gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="balanced")
    p.add_argument("--checkpoint", default="", help="default: the embedded checkpoint")
    p.add_argument("--stop", type=int, default=126, help="frames from the start (clip: 126)")
    args = p.parse_args()

    from magicmask.face.analyzer import FaceAnalyzer, FaceConfig
    from magicmask.face.hands import HandDetector, edge_flicker, hand_silhouette
    from mmvideo.io.decode import VideoReader

    work = Path(tempfile.mkdtemp(prefix="occlusion_"))
    seconds, outputs, cuts = {}, {}, {}
    for mask in ("hull,hands", "hull"):
        folder = work / mask.replace(",", "_")
        folder.mkdir()
        seconds[mask] = swap(mask, folder / "out.mkv", folder, args)
        with VideoReader(folder / "out.mkv") as reader:
            outputs[mask] = [f.image for f in reader]
        cuts[mask] = mattes(folder)
    with VideoReader(DATA / CLIP, stop=args.stop) as reader:
        inputs = [f.image for f in reader]
    detector = HandDetector()
    (face,) = FaceAnalyzer(FaceConfig(detector="cnn")).detect(inputs[0])
    erode = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * HOLE_MARGIN + 1,) * 2)
    kept = {m: [] for m in outputs}
    holes, cut = [], []
    for i, before in enumerate(inputs):
        sil = np.zeros(before.shape[:2], np.uint8)
        for hand in detector(before, face.box[None])[0]:
            np.maximum(sil, hand_silhouette(hand, before.shape[:2]), out=sil)
        if sil.any():
            inner = cv2.erode(sil, erode) > 0
            for mask, frames in outputs.items():
                kept[mask].append(np.abs(gray(frames[i]) - gray(before))[inner])
        out = np.clip(cuts["hull"][i] - cuts["hull,hands"][i], 0.0, 1.0)
        cut.append(out)
        hole = (cuts["hull"][i] >= 0.5) & (cuts["hull,hands"][i] < 0.5)
        holes.append(int((hole & ~(cv2.dilate(sil, grow) > 0)).sum()))
    print(
        f"{CLIP}, {len(inputs)} frames, preset {args.preset}, "
        f"{args.checkpoint or 'embedded checkpoint'}; swap {seconds['hull,hands']:.0f} s "
        f"(hull,hands) / {seconds['hull']:.0f} s (hull); {len(kept['hull'])} frames with a hand"
    )
    for mask, changes in kept.items():
        means = [float(c.mean()) for c in changes]
        every = np.concatenate(changes) if changes else np.zeros(1)
        print(
            f"hand kept, --mask {mask}: mean {np.mean(means):.2f} gray levels, worst frame "
            f"{max(means):.2f}, largest pixel {every.max():.0f}, beyond 2 levels "
            f"{(every > 2).mean():.2%}"
        )
    big = [i for i, h in enumerate(holes) if h > 20]
    print(f"hole (cut-out > {HOLE_MARGIN} px from the hand): largest {max(holes)} px; frames {big}")
    print(f"flicker of the cut-out at its edge: {edge_flicker(cut):.1f} gray levels")


if __name__ == "__main__":
    main()
