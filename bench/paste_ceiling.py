"""How far can an inner-face swap move the judge? A real face as the swap: another photo of the
source person warped onto each frame's 68 landmarks (piecewise affine), its LAB mean and spread
matched to the frame inside the mask and pasted through the swap's landmark hull (brows and
below, ``--mask-forehead`` F above them) with ``compose``'s own colour match and feather, its
crop-pixel erosion and feather carried to the face's scale in the frame. The FaceNet judge's gain to the source photo (``bench/quality.py``'s measure)
is then what a perfect identity gives through that mask: the hair, head outline and everything
else outside it stay the target's. A crude paste (the photo's expression and light are its own),
so it is a yardstick for a model's gain on the same clip, not a product.

    .venv/bin/python bench/paste_ceiling.py                 # the cross cases of docs/benchmarks.md
    .venv/bin/python bench/paste_ceiling.py --forehead 0 --forehead 0.1 --forehead 0.3
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
from skimage.transform import PiecewiseAffineTransform, warp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import DATA, read_frames  # noqa: E402

# (clip, the judge's source photo, the other photo of that person that is pasted)
CASES = (
    ("talking_head_obama_address_01.mp4", "id_biden_02.jpg", "id_biden_01.jpg"),
    ("talking_head_turn_01.mp4", "id_biden_02.jpg", "id_biden_01.jpg"),
    ("talking_head_turn_03.mp4", "id_biden_02.jpg", "id_biden_01.jpg"),
    ("talking_head_jackie_chan_01.mp4", "id_biden_02.jpg", "id_biden_01.jpg"),
    ("talking_head_glasses_02.mp4", "id_kit_harington_02.jpeg", "id_kit_harington_01.jpeg"),
)
# the eye distance in the 224 crop, to carry compose's crop-pixel mask sizes to the frame
CROP_EYE_DISTANCE = 60.0
# the warp's anchors reach this far above the brows (as face_outline's forehead), so it covers
# every mask measured
ANCHOR_FOREHEAD = 0.4


def anchors(landmarks: np.ndarray) -> np.ndarray:
    """The 68 landmarks and the brows raised along chin → nose bridge."""
    up = landmarks[27] - landmarks[8]
    return np.vstack([landmarks, landmarks[17:27] + ANCHOR_FOREHEAD * up])


def paste(frame, landmarks, photo, photo_landmarks, forehead: float) -> np.ndarray:
    from magicmask.face.mask import face_outline
    from magicmask.quality import eye_distance
    from mmvideo.compose import feather_mask, match_color_lab
    from mmvideo.config import ComposeConfig

    t = PiecewiseAffineTransform.from_estimate(anchors(landmarks), anchors(photo_landmarks))
    face = warp(photo, t, output_shape=frame.shape[:2]).astype(np.float32)
    hard = np.zeros(frame.shape[:2], np.float32)
    cv2.fillConvexPoly(hard, np.round(face_outline(landmarks, forehead)).astype(np.int32), 1.0)
    # compose's own feather and colour match, with its crop-pixel sizes carried to the frame
    scale = float(eye_distance(landmarks)) / CROP_EYE_DISTANCE
    crop = ComposeConfig()
    frame_px = ComposeConfig(
        mask_erosion=round(crop.mask_erosion * scale), mask_feather=round(crop.mask_feather * scale)
    )
    weight = feather_mask(hard, frame_px)[..., None]
    plate = frame.astype(np.float32) / 255.0
    out = weight * match_color_lab(face, plate, weight[..., 0]) + (1 - weight) * plate
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--forehead", type=float, action="append", help="Mask forehead F.")
    parser.add_argument("--max-frames", type=int, default=40, help="First N frames of each clip.")
    args = parser.parse_args(argv)
    foreheads = args.forehead or [0.0, 0.1]

    from magicmask import quality
    from magicmask.face.analyzer import FaceAnalyzer, FaceConfig
    from magicmask.face.image import load_image

    analyzer = FaceAnalyzer(FaceConfig(face_backend="dlib", detector="hog", detect_upsample=1))
    judge = quality.IdentityJudge()

    def still(name: str):
        image = load_image(DATA / name, max_side=1600)
        return image, analyzer.detect(image)[0].landmarks[:, :2]

    t0 = time.perf_counter()
    lines = [
        "| clip ← source | pasted photo | mask forehead | frames | FaceNet gain | dlib dist drop | dlib < 0.6 |",
        "|---|---|---|---|---|---|---|",
    ]
    for clip, source, other in CASES:
        src_image, src_landmarks = still(source)
        src = judge.embed([src_image], [src_landmarks])[0]
        photo, photo_landmarks = still(other)
        frames = read_frames(DATA / clip, args.max_frames)
        faces = [(f, next(iter(analyzer.detect(f)), None)) for f in frames]
        faces = [(f, face) for f, face in faces if face is not None]
        originals = judge.embed([f for f, _ in faces], [face.landmarks for _, face in faces])
        for forehead in foreheads:
            pasted = [
                paste(f, face.landmarks[:, :2], photo, photo_landmarks, forehead)
                for f, face in faces
            ]
            refit = [
                analyzer.landmarks(p, face.box[None])[0].landmarks
                for p, (_, face) in zip(pasted, faces)
            ]
            ident = quality.identity(src, originals, judge.embed(pasted, refit))
            name = f"{Path(clip).stem.replace('talking_head_', '')} ← {Path(source).stem.replace('id_', '')}"
            lines.append(
                f"| {name} | {Path(other).stem.replace('id_', '')} | {forehead:g} | {len(faces)} | "
                f"{ident.facenet_gain:+.3f} | {ident.dlib_distance_drop:+.3f} | {ident.dlib_same_swap:.0%} |"
            )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sys.stdout.write(
        f"{platform.node()} ({platform.machine()}), {stamp}, first {args.max_frames} frames, "
        f"{(time.perf_counter() - t0) / 60:.1f} min\n" + "\n".join(lines) + "\n"
    )


if __name__ == "__main__":
    main()
