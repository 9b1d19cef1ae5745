"""Face-analysis stage timings per frame at 360p, 720p and 1080p, ours beside a baseline.

    .venv/bin/python bench/face_analysis.py [--clip CLIP] [--frames 8] [--fan] [--threads 2]

For each resolution (frames of a real talking-head clip, resized) it prints the median ms per
frame of each stage, and for the stages where we chose a faster path, the straightforward
baseline measured in the same run with the ratio baseline/ours:

- detect (dlib HOG): ours detects on a copy shrunk to 640 px long side; baseline at full size.
  Also without HOG's 2x upsampling (finds faces from ~80 px of the shrunk copy instead of ~40).
- detect (MTCNN): ours and the same shrink; no baseline.
- landmarks (dlib 68, Face Mesh 468 of the mediapipe backend, FAN 2-D with --fan): per face,
  given the box.
- pose fit (solvePnP of the mean face).
- depth: ours rasterises triangle planes; baseline scipy LinearNDInterpolator on the triangulation.
- heat-maps: ours windowed distance transforms; baseline one Gaussian per landmark over the crop.
- prepare_target: everything the generator needs for one face (align, fit, depth, maps, mask, boxes).
- hands (palm detection around the face box, hand landmarks on each palm found, silhouette):
  the clip's frames (no hand), and after the tables frames 19-23 of the occlusion clip, where a
  hand covers the face.

It ends with the pose error against the AFLW2000-3D ground truth of the four sample stills, from
dlib's landmarks (where HOG, or else MTCNN, finds the face), from the mediapipe backend (MMOD
boxes, Face Mesh points) and from the ground-truth landmarks.

FAN runs with randomly initialised weights (same architecture, so the same cost) and is slow on
CPU: add --fan to include it. insightface is not timed: its packs are not in this environment.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from scipy.interpolate import LinearNDInterpolator

from magicmask.face.align import align_target, transform_points
from magicmask.face.analyzer import FaceAnalyzer, FaceConfig
from magicmask.face.depth import depth_map
from magicmask.face.hands import HandDetector, hand_mask
from magicmask.face.heatmaps import landmark_heatmaps
from magicmask.face.pose import fit_shape
from magicmask.face.prepare import prepare_target

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CLIP = REPO.parent / "shared" / "data" / "talking_head_obama_news_01.mp4"
OCCLUSION_CLIP = DEFAULT_CLIP.parent / "talking_head_profile_occlusion_01.mp4"
RESOLUTIONS = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}


def frames_of(clip: Path, count: int) -> list[np.ndarray]:
    with av.open(str(clip)) as container:
        frames = [
            f.to_ndarray(format="rgb24") for _, f in zip(range(count), container.decode(video=0))
        ]
    return frames


def median_ms(fn, items, repeat: int = 1) -> float:
    times = []
    for item in items:
        for _ in range(repeat):
            start = time.perf_counter()
            fn(item)
            times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def baseline_depth(points: np.ndarray, heights: np.ndarray, size: int = 224) -> np.ndarray:
    """The textbook way: linear interpolation over the triangulation at every crop pixel."""
    interp = LinearNDInterpolator(points, heights, fill_value=np.nan)
    yy, xx = np.mgrid[0:size, 0:size]
    z = interp(xx.ravel(), yy.ravel()).reshape(size, size)
    return np.where(np.isnan(z), 0.0, np.clip(0.5 + z / size, 0.05, 1.0)).astype(np.float32)


def baseline_heatmaps(points: np.ndarray, size: int = 224, sigma: float = 2.0) -> np.ndarray:
    """One Gaussian per landmark over the whole crop, max within each group."""
    from magicmask.face.heatmaps import LANDMARK_GROUPS

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = np.zeros((len(LANDMARK_GROUPS), size, size), np.float32)
    for g, idx in enumerate(LANDMARK_GROUPS.values()):
        for x, y in points[list(idx)]:
            np.maximum(
                out[g],
                np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)),
                out=out[g],
            )
    return out


def row(name: str, ours: float, base: float | None = None) -> str:
    if base is None:
        return f"| {name} | {ours:.1f} | | |"
    return f"| {name} | {ours:.1f} | {base:.1f} | {base / ours:.1f}x |"


def hands_ms(detector: HandDetector, pairs) -> float:
    """Hands near one face and their silhouette, ms per frame."""
    return median_ms(
        lambda p: hand_mask(detector(p[0], p[1].box[None])[0], p[0].shape[:2]), pairs, 3
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--fan", action="store_true", help="also time FAN 2-D (random weights)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)

    source = frames_of(args.clip, args.frames)
    hog = FaceAnalyzer(FaceConfig())
    hog_full = FaceAnalyzer(FaceConfig(detect_max_side=0))
    hog_fast = FaceAnalyzer(FaceConfig(detect_upsample=0))
    mtcnn = FaceAnalyzer(FaceConfig(detector="mtcnn"))
    mesh = FaceAnalyzer(FaceConfig(face_backend="mediapipe"))
    hands = HandDetector()
    fan = None
    if args.fan:
        from face_alignment.models import FAN

        from magicmask.face.fan_backend import FanLandmarker, weight_name

        folder = Path(tempfile.mkdtemp(prefix="fan_bench_"))
        torch.save(FAN(4).state_dict(), folder / weight_name("2DFAN-4"))
        fan = FanLandmarker("2d", folder, flip=False)

    print(
        f"clip {args.clip.name}, {args.frames} frames, torch threads {args.threads}, {sys.platform}"
    )
    for label, size in RESOLUTIONS.items():
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in source]
        faces = [hog_full.detect(f)[:1] for f in frames]
        pairs = [(f, fs[0]) for f, fs in zip(frames, faces) if fs]
        if not pairs:
            print(f"\n{label}: no face found, skipped")
            continue
        crops = []
        for f, face in pairs:
            _, m = align_target(f, face.landmarks)
            pts = transform_points(face.landmarks, m)
            crops.append(
                (
                    pts,
                    fit_shape(face.landmarks, f.shape[:2]).depth
                    * np.sqrt(abs(np.linalg.det(m[:, :2]))),
                )
            )
        print(f"\n### {label} ({size[0]}x{size[1]}), {len(pairs)} frames with a face\n")
        print("| stage | ours ms | baseline ms | baseline/ours |")
        print("|---|---|---|---|")
        print(
            row(
                "detect, dlib HOG + 68 points",
                median_ms(hog.detect, frames),
                median_ms(hog_full.detect, frames),
            )
        )
        print(
            row(
                "detect, dlib HOG no upsampling + 68",
                median_ms(hog_fast.detect, frames),
            )
        )
        print(row("detect, MTCNN + dlib 68 points", median_ms(mtcnn.detect, frames)))
        print(
            row(
                "landmarks only, dlib 68 (1 face)",
                median_ms(lambda p: hog.landmarks(p[0], p[1].box[None]), pairs, 3),
            )
        )
        print(
            row(
                "landmarks only, Face Mesh 468 + 3-D fit (1 face)",
                median_ms(lambda p: mesh.landmarks(p[0], p[1].box[None]), pairs, 3),
            )
        )
        if fan is not None:
            print(
                row(
                    "landmarks only, FAN 2-D (1 face)",
                    median_ms(lambda p: fan(p[0], p[1].box[None]), pairs[:3]),
                )
            )
        print(
            row(
                "pose fit",
                median_ms(lambda p: fit_shape(p[1].landmarks, p[0].shape[:2]), pairs, 5),
            )
        )
        ours_depth = median_ms(lambda c: depth_map(c[0], np.c_[c[0], c[1]]), crops, 5)
        base_depth = median_ms(lambda c: baseline_depth(c[0], c[1]), crops, 2)
        print(row("depth map 224 (fitted heights)", ours_depth, base_depth))
        ours_maps = median_ms(lambda c: landmark_heatmaps(c[0]), crops, 5)
        base_maps = median_ms(lambda c: baseline_heatmaps(c[0]), crops, 2)
        print(row("landmark heat-maps 8x224", ours_maps, base_maps))
        print(
            row(
                "prepare_target (all model inputs)",
                median_ms(lambda p: prepare_target(p[0], p[1].landmarks), pairs, 5),
            )
        )
        print(row("hands: palms + landmarks + silhouette (1 face)", hands_ms(hands, pairs)))
    occluded = frames_of(OCCLUSION_CLIP, 24)[19:]
    # MMOD boxes (the mediapipe backend's detector): HOG misses these profiles
    pairs = [(f, mesh.detect(f)[0]) for f in occluded]
    print(
        f"\nhands with a hand over the face ({OCCLUSION_CLIP.name} frames 19-23, 224x224): "
        f"{hands_ms(hands, pairs):.1f} ms per frame"
    )
    pose_accuracy(args.clip.parent)


def pose_accuracy(data_dir: Path) -> None:
    import scipy.io as sio

    hog, mtcnn = FaceAnalyzer(FaceConfig()), FaceAnalyzer(FaceConfig(detector="mtcnn"))
    mesh = FaceAnalyzer(FaceConfig(face_backend="mediapipe"))
    print("\n### Pose error against AFLW2000-3D (degrees, ours - ground truth)\n")
    print(
        "| image | truth yaw/pitch/roll | dlib landmarks | mediapipe (MMOD + Face Mesh) | fit to true 2-D landmarks | fit to true 3-D |"
    )
    print("|---|---|---|---|---|---|")
    for mat_path in sorted(data_dir.glob("pose_aflw2000_*.mat")):
        mat = sio.loadmat(mat_path)
        pitch, yaw, roll = np.degrees(mat["Pose_Para"][0, :3])
        truth = np.array([yaw, pitch, roll])
        pts3d = mat["pt3d_68"].T.astype(np.float64)
        image = cv2.cvtColor(cv2.imread(str(mat_path.with_suffix(".jpg"))), cv2.COLOR_BGR2RGB)
        found, how = hog.detect(image), "HOG"
        if not found:
            found, how = mtcnn.detect(image), "MTCNN"
        dlib = f"{np.round(np.array(found[0].pose) - truth, 1)} ({how})" if found else "not found"
        meshed = mesh.detect(image)
        mp = f"{np.round(np.array(meshed[0].pose) - truth, 1)}" if meshed else "not found"
        fit2d = np.array(fit_shape(pts3d[:, :2], image.shape[:2]).pose) - truth
        fit3d = np.array(fit_shape(pts3d[:, :2], image.shape[:2], pts3d).pose) - truth
        print(
            f"| {mat_path.stem} | {np.round(truth, 1)} | {dlib} | {mp} | {np.round(fit2d, 1)} | {np.round(fit3d, 1)} |"
        )


if __name__ == "__main__":
    main()
