"""Face-analysis stage timings per frame at 360p, 720p and 1080p, ours beside a baseline.

    .venv/bin/python bench/face_analysis.py [--clip CLIP] [--frames 8] [--fan] [--threads 2]
        [--hand-frames 30] [--hands-only] [--parser-only]

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
- hands (palms, hand landmarks, silhouette in the 224 crop), mean ms per frame over
  ``--hand-frames`` frames in order with one face box: ours ``HandTracker`` (a hand is followed
  from its landmarks, the palm detector runs only to find new ones), baseline a palm pass on every
  frame (before the tracker); the two run frame by frame in turn, so both see the same load. On the
  clip's frames (no hand) and, after the tables, on frames 0-44 of the occlusion clip (a hand
  comes up in 15-18, covers the face in 19-23 and leaves by 28), with the frames each found a
  hand in; then the flicker of the
  hand mask at its edge (``edge_flicker``) on a still hand (frame 21 sixteen times with fresh
  noise, σ 3 grey levels): a palm pass every frame, tracked, tracked and smoothed.
- face parser (``--mask hull,parser``): after the tables, per face per frame on the aligned 224
  crops of the clip's frames, wall and CPU ms of ``ParseTracker`` (BiSeNet's face probability at
  its 512 px input, as the swap runs it, then the temporal filter), and at a 256 px input for
  comparison. Random weights: the cost does not depend on them (we ship none).

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
from magicmask.face.hands import HandDetector, HandTracker, edge_flicker, hand_mask
from magicmask.face.heatmaps import landmark_heatmaps
from magicmask.face.parsing import BiSeNet, FaceParser, ParseTracker
from magicmask.face.pose import fit_shape
from magicmask.face.prepare import prepare_target

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CLIP = REPO.parent / "shared" / "data" / "talking_head_obama_news_01.mp4"
OCCLUSION_CLIP = "talking_head_profile_occlusion_01.mp4"  # beside --clip
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


def crop_matrix(box: np.ndarray, size: int = 224) -> np.ndarray:
    """Frame → a ``size`` crop of the face box: the hand mask is drawn there, as in the pipeline."""
    x0, y0, x1, y1 = box
    s = size / max(x1 - x0, y1 - y0, 1.0)
    return np.array([[s, 0.0, -x0 * s], [0.0, s, -y0 * s]])


def hands_costs(
    detector: HandDetector, frames: list[np.ndarray], box: np.ndarray
) -> tuple[dict[str, float], dict[str, float], dict[str, list[int]]]:
    """Over ``frames`` in order, ``HandTracker`` and a palm pass on every frame, frame by frame
    in turn: the mean wall ms and CPU ms (this process's time, which the box's load hardly
    changes) per frame of the hands near one face and their mask, and the frames each found a
    hand in; keyed "tracked" and "every"."""
    tracker, m = HandTracker(detector), crop_matrix(box)
    wall, cpu = {"tracked": 0.0, "every": 0.0}, {"tracked": 0.0, "every": 0.0}
    found = {"tracked": [], "every": []}
    for i, frame in enumerate(frames):
        for way in wall:
            start, start_cpu = time.perf_counter(), time.process_time()
            hands = tracker(frame, box, i) if way == "tracked" else detector(frame, box[None])[0]
            hand_mask(hands, (224, 224), m)
            wall[way] += (time.perf_counter() - start) * 1000.0
            cpu[way] += (time.process_time() - start_cpu) * 1000.0
            if hands:
                found[way].append(i)
    n = max(len(frames), 1)
    return {k: v / n for k, v in wall.items()}, {k: v / n for k, v in cpu.items()}, found


def still_hand_flicker(detector: HandDetector, frame: np.ndarray, box: np.ndarray) -> dict:
    """Edge flicker of the hand mask on ``frame`` sixteen times with fresh noise (σ 3 grey
    levels): the hand does not move, so any change at its edge is flicker."""
    rng = np.random.default_rng(0)
    noisy = [
        np.clip(frame + rng.normal(0.0, 3.0, frame.shape), 0, 255).astype(np.uint8)
        for _ in range(16)
    ]
    ways = {
        "palm pass every frame": lambda f, b, i: detector(f, b[None])[0],
        "tracked": HandTracker(detector, smooth=False),
        "tracked + smoothed": HandTracker(detector),
    }
    return {
        name: edge_flicker([hand_mask(way(f, box, i), f.shape[:2]) for i, f in enumerate(noisy)])
        for name, way in ways.items()
    }


def parser_costs(crops: list[np.ndarray], sizes=(512, 256), repeat: int = 3) -> None:
    """Wall and CPU ms per face per frame of ``ParseTracker`` on the aligned ``crops`` in
    order, at each BiSeNet input size, with random weights; the sizes run crop by crop in turn,
    so both see the same load. Median and best, since a loaded box spreads them widely."""
    folder = Path(tempfile.mkdtemp(prefix="parser_bench_"))
    torch.manual_seed(0)
    torch.save(BiSeNet().state_dict(), folder / "79999_iter.pth")
    trackers = {n: ParseTracker(FaceParser(folder / "79999_iter.pth", input_size=n)) for n in sizes}
    wall = {n: [] for n in sizes}
    cpu = {n: [] for n in sizes}
    for tracker in trackers.values():
        tracker(crops[0], 0)  # the first pass allocates
    for k in range(repeat):
        for i, crop in enumerate(crops):
            for n, tracker in trackers.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                tracker(crop, k * len(crops) + i + 1)
                wall[n].append((time.perf_counter() - start) * 1000.0)
                cpu[n].append((time.process_time() - start_cpu) * 1000.0)
    for n in sizes:
        print(
            f"face parser (BiSeNet, {n} px input, random weights), 1 face, {len(wall[n])} crops "
            f"in order, ms per face per frame: wall median {statistics.median(wall[n]):.0f} "
            f"(best {min(wall[n]):.0f}), CPU median {statistics.median(cpu[n]):.0f} "
            f"(best {min(cpu[n]):.0f})"
        )


def stage_rows(frames, pairs, hog, hog_full, hog_fast, mtcnn, mesh, fan) -> None:
    """The table rows of every stage but hands, for one resolution."""
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--fan", action="store_true", help="also time FAN 2-D (random weights)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hand-frames", type=int, default=30, help="frames in order for hands")
    parser.add_argument("--hands-only", action="store_true", help="only the hands rows")
    parser.add_argument("--parser-only", action="store_true", help="only the face parser line")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    if args.parser_only:
        frames = frames_of(args.clip, args.frames)
        analyzer = FaceAnalyzer(FaceConfig())
        faces = [(f, analyzer.detect(f)) for f in frames]
        print(f"clip {args.clip.name}, torch threads {args.threads}, {sys.platform}")
        parser_costs([align_target(f, fs[0].landmarks)[0] for f, fs in faces if fs])
        return

    source = frames_of(args.clip, 1 if args.hands_only else args.frames)
    hand_source = frames_of(args.clip, args.hand_frames)
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
        print(f"\n### {label} ({size[0]}x{size[1]}), {len(pairs)} frames with a face\n")
        print("| stage | ours ms | baseline ms | baseline/ours |")
        print("|---|---|---|---|")
        if not args.hands_only:
            stage_rows(frames, pairs, hog, hog_full, hog_fast, mtcnn, mesh, fan)
        hand_frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in hand_source]
        wall, cpu, _ = hands_costs(hands, hand_frames, pairs[0][1].box)
        what = f"hands (1 face, {len(hand_frames)} frames in order): tracked vs a palm pass every frame"
        print(row(what, wall["tracked"], wall["every"]))
        print(row(f"{what}, CPU ms", cpu["tracked"], cpu["every"]))
    occlusion = frames_of(args.clip.parent / OCCLUSION_CLIP, 45)
    # MMOD's box on the first frame (HOG misses the profile): the search region, 2.5x the box,
    # spans the 224x224 frame wherever the head moves
    box = FaceAnalyzer(FaceConfig(detector="cnn")).detect(occlusion[0])[0].box
    wall, cpu, found = hands_costs(hands, occlusion, box)
    print(
        f"\nhands on {OCCLUSION_CLIP} frames 0-44 (224x224, a hand over the face in 19-23), "
        f"ms per frame: tracked {wall['tracked']:.1f} (CPU {cpu['tracked']:.1f}), a palm pass "
        f"every frame {wall['every']:.1f} (CPU {cpu['every']:.1f}); a hand found in frames "
        f"{found['tracked']} (tracked), {found['every']} (every frame)"
    )
    flicker = still_hand_flicker(hands, occlusion[21], box)
    print(
        "hand mask flicker at its edge (grey levels, frame 21 sixteen times with fresh noise): "
        + ", ".join(f"{name} {value:.1f}" for name, value in flicker.items())
    )
    if not args.hands_only:
        crops = [align_target(f, face.landmarks)[0] for f, face in pairs]
        parser_costs(crops)
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
