"""Gap filling and detection at the footage's scale (issue 16): before vs after, side by side.

"Before" is each preset with the new keys set to what the code did until now (no gap filling,
no second detector, detection on a copy of ``detect_max_side`` px: 360 balanced, 320 fast, 720
quality); "after" is the preset as shipped. For every clip and preset it prints:

- visible: frames where the ``quality`` detector (as shipped: HOG, 48 px faces) finds a face
  in the original frame; unswapped: those of them with no planned face (the render repaints
  every planned face, so this is the count of visible frames left as the original), with the
  longest run of them;
- the same with gap filling off (``gap_seconds = 0``, no second detector) but the new detection
  size, which isolates gap filling;
- unfilled gaps: runs of at most 10 frames without a planned face between two planned frames,
  and whether issue 16's first goal holds (<= 0.5 % of visible frames unswapped and no such
  gap), for each of the three;
- tracks, the landmark jitter of the planned (smoothed) faces on the frames all three swap
  (``common_jitter``), the jitter of "after" over all its frames, and the analysis time.

``--crowd`` adds the 1080p crowd clip: per sampled frame, faces with a box side >= 60 px the
``quality`` detector finds in the full frame, and how many of them the balanced analysis
has a face for (box center inside), before and after, and the tracks after;
``--crowd-sheet PNG`` draws them (one row per track) for the one-track-per-person check by eye.
``--e2e`` runs bench/swap_e2e.py's
measure (embedded model, balanced) before and after in the same run.

    .venv/bin/python bench/gap_fill.py                 # jackie_chan + profile_occlusion
    .venv/bin/python bench/gap_fill.py --crowd --e2e
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from magicmask.checkpoint import default_checkpoint_path
from magicmask.face.analyzer import FaceAnalyzer
from mmvideo import pipeline
from mmvideo.config import load_config
from mmvideo.generate import load_models
from mmvideo.io.media import open_reader, probe_media
from mmvideo.smooth import jitter

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("MMVIDEO_TEST_DATA", REPO.parent / "shared" / "data"))

CLIPS = ("talking_head_jackie_chan_01.mp4", "talking_head_profile_occlusion_01.mp4")
OLD_MAX_SIDE = {"fast": 320, "balanced": 360, "quality": 720}
# issue 16's first goal: at most this share of the visible frames unswapped, and no unfilled
# gap of at most GOAL_GAP frames
GOAL_SHARE = 0.005
GOAL_GAP = 10


def before(preset: str) -> dict:
    """The overrides that give a preset's behaviour before issue 16."""
    return {
        "gap_seconds": 0.0,
        "second_detector": "none",
        "smallest_face": 0,
        "detect_max_side": OLD_MAX_SIDE[preset],
    }


def visible_frames(clip: Path, min_side: int = 0, step: int = 1) -> dict[int, list[np.ndarray]]:
    """Frame → boxes the shipped ``quality`` detector finds in the original (side >= min_side),
    every ``step``-th frame."""
    qa = FaceAnalyzer(pipeline.face_config(load_config("quality").detect))
    info = probe_media(str(clip))
    out = {}
    with open_reader(str(clip), info) as reader:
        for frame in reader:
            if frame.index % step:
                continue
            boxes = [f.box for f in qa.detect(frame.image)]
            out[frame.index] = [b for b in boxes if min(b[2] - b[0], b[3] - b[1]) >= min_side]
    return out


def analyze(clip: Path, preset: str, overrides: dict, models, stop: int | None = None):
    cfg = load_config(preset, overrides)
    info = probe_media(str(clip))
    stop = stop or info.video.frames
    t = time.perf_counter()
    analysis = pipeline.analyze(
        str(clip), info, cfg, FaceAnalyzer(pipeline.face_config(cfg.detect)), models, 0, stop
    )
    seconds = time.perf_counter() - t
    plan, _, _ = pipeline.plan_faces(analysis, cfg, None, 0, stop)
    return analysis, plan, seconds


def common_jitter(plans: list[dict], frames: list[int] | None = None) -> list[float]:
    """Jitter (RMS landmark acceleration, ``smooth.jitter``) of the largest planned face of each
    plan, over the runs of consecutive frames every plan has a face in (and in ``frames``, when
    given): the same frames for every plan, so a plan that also swaps hard frames (a turn, a
    head going down) is not charged for them; mean over runs of >= 3 frames."""
    shared = set.intersection(*(set(p) for p in plans))
    shared = sorted(shared if frames is None else shared & set(frames))
    runs = pipeline._consecutive(shared)
    out = []
    for plan in plans:
        values = [
            jitter(np.stack([max(plan[f], key=lambda x: x[1].area)[1].landmarks for f in run]))
            for run in runs
            if len(run) >= 3
        ]
        out.append(float(np.mean(values)) if values else float("nan"))
    return out


def longest_run(frames: list[int]) -> int:
    best = run = 0
    for i, f in enumerate(frames):
        run = run + 1 if i and f == frames[i - 1] + 1 else 1
        best = max(best, run)
    return best


def short_gaps(planned: set[int], longest: int = GOAL_GAP) -> list[tuple[int, int]]:
    """Runs of at most ``longest`` frames without a planned face between two planned frames
    (first, last): what the viewer sees as the original face flashing back."""
    frames = sorted(planned)
    return [(a + 1, b - 1) for a, b in zip(frames, frames[1:]) if 1 < b - a <= longest + 1]


def goal(missed: list[int], visible: list[int], gaps: list) -> str:
    """Issue 16's first goal: unswapped visible frames <= 0.5 % and no short unfilled gap."""
    met = len(missed) <= GOAL_SHARE * len(visible) and not gaps
    return "met" if met else "NOT met"


def _pct(missed: list[int], visible: list[int]) -> str:
    return f"{len(missed)} ({100 * len(missed) / max(1, len(visible)):.1f} %)"


def talking_heads(models) -> None:
    """Per clip and preset: before, after, and after with gap filling off (same detection)."""
    print(
        "clip | preset | visible | unswapped: before / gap filling off / after | longest run "
        f"| unfilled gaps <= {GOAL_GAP} frames | goal (<= {100 * GOAL_SHARE} %, no such gap) "
        "| tracks | jitter on the frames all three swap | jitter of after on all its frames "
        "| analyze s"
    )
    for name in CLIPS:
        clip = DATA / name
        visible = [f for f, boxes in visible_frames(clip).items() if boxes]
        for preset in ("fast", "balanced", "quality"):
            off = {"gap_seconds": 0.0, "second_detector": "none"}
            runs = [analyze(clip, preset, o, models) for o in (before(preset), off, {})]
            missed = [[f for f in visible if f not in plan] for _, plan, _ in runs]
            plans = [plan for _, plan, _ in runs]
            jit = common_jitter(plans)
            (own,) = common_jitter(plans[2:])
            gaps = [short_gaps(set(plan)) for plan in plans]
            print(
                f"{name} | {preset} | {len(visible)} | "
                + " / ".join(_pct(m, visible) for m in missed)
                + " | "
                + " / ".join(str(longest_run(m)) for m in missed)
                + " | "
                + " / ".join(str(len(g)) for g in gaps)
                + " | "
                + " / ".join(goal(m, visible, g) for m, g in zip(missed, gaps))
                + " | "
                + " / ".join(str(len(a.tracks)) for a, _, _ in runs)
                + " | "
                + " / ".join(f"{j:.3f}" for j in jit)
                + f" | {own:.3f} | "
                + " / ".join(f"{s:.1f}" for _, _, s in runs),
                flush=True,
            )
            if missed[2]:
                print(f"    unswapped visible frames after: {missed[2]}")
            if gaps[2]:
                print(f"    unfilled gaps after: {gaps[2]}")


def crowd(models, step: int, sheet: str | None = None) -> None:
    clip = DATA / "multi_face_crowd_walk_01.mp4"
    truth = visible_frames(clip, 60, step)
    print(
        "\ncrowd 1080p, balanced | faces >= 60 px (quality detector) | found before | after "
        "| tracks before | after"
    )
    counts = []
    for overrides in (before("balanced"), {}):
        analysis, _, seconds = analyze(clip, "balanced", overrides, models)
        found = 0
        for f, boxes in truth.items():
            faces = [t.faces[f] for t in analysis.tracks if f in t.faces]
            for b in boxes:
                cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
                found += any(
                    g.box[0] <= cx <= g.box[2] and g.box[1] <= cy <= g.box[3] for g in faces
                )
        counts.append((found, len(analysis.tracks), seconds))
    total = sum(len(b) for b in truth.values())
    (fb, tb, sb), (fa, ta, sa) = counts
    print(
        f"frames {sorted(truth)} | {total} | {fb} | {fa} | {tb} | {ta} (analyze {sb:.0f} s / {sa:.0f} s)"
    )
    for t in analysis.tracks:
        print(f"    track {t.id}: frames {t.first}-{t.last} ({len(t.faces)} with a face)")
    if sheet:
        track_sheet(clip, analysis.tracks, Path(sheet))
        print(f"    one row per track, crops through its life: {sheet}")


def track_sheet(clip: Path, tracks, out: Path, columns: int = 10, side: int = 96) -> None:
    """A contact sheet with one row per track: ``columns`` crops spread over its frames, each
    labelled with its frame number. One person per row and no person on two rows is what
    "one track per person" means; checked by eye, since the embedded identity encoder is too
    weak to be the judge (different people of the crowd clip score 0.82-0.94)."""
    picks = {}
    for t in tracks:
        frames = sorted(t.faces)
        n = min(columns, len(frames))
        picks[t.id] = [frames[round(i * (len(frames) - 1) / max(1, n - 1))] for i in range(n)]
    wanted = {f for p in picks.values() for f in p}
    crops = {}
    with open_reader(str(clip), probe_media(str(clip))) as reader:
        for frame in reader:
            if frame.index not in wanted:
                continue
            image = np.ascontiguousarray(frame.image[..., ::-1])  # BGR for cv2
            for t in tracks:
                if frame.index in picks[t.id]:
                    x0, y0, x1, y1 = t.faces[frame.index].box
                    half = 0.7 * max(x1 - x0, y1 - y0)
                    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
                    crop = image[
                        int(max(0, cy - half)) : int(cy + half),
                        int(max(0, cx - half)) : int(cx + half),
                    ]
                    crop = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
                    cv2.putText(crop, str(frame.index), (2, 12), 0, 0.4, (0, 255, 255), 1)
                    crops[t.id, frame.index] = crop
    rows = []
    for t in tracks:
        label = np.zeros((side, 40, 3), np.uint8)
        cv2.putText(label, str(t.id), (5, side // 2 + 8), 0, 0.9, (255, 255, 255), 2)
        row = [crops[t.id, f] for f in picks[t.id]]
        row += [np.zeros((side, side, 3), np.uint8)] * (columns - len(row))
        rows.append(np.hstack([label, *row]))
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), np.vstack(rows))


def e2e() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    from swap_e2e import bench, report

    clip, source = DATA / "talking_head_obama_address_01.mp4", DATA / "id_biden_01.jpg"
    flags = (
        "--gap-seconds",
        "0",
        "--second-detector",
        "none",
        "--smallest-face",
        "0",
        "--detect-max-side",
        "360",
    )
    with tempfile.TemporaryDirectory() as tmp:
        for label, extra in (("before", flags), ("after", ())):
            folder = Path(tmp) / label  # the commands refuse to overwrite the other's outputs
            folder.mkdir()
            res = bench(clip, source, default_checkpoint_path(), "balanced", None, folder, extra)
            report(f"{clip.name} balanced, {label}", *res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crowd", action="store_true")
    ap.add_argument("--crowd-step", type=int, default=10, help="every Nth crowd frame is counted")
    ap.add_argument("--crowd-sheet", help="PNG: one row of crops per crowd track (after)")
    ap.add_argument("--e2e", action="store_true")
    ap.add_argument("--skip-clips", action="store_true")
    args = ap.parse_args()
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at start")
    models = load_models(None)
    if not args.skip_clips:
        talking_heads(models)
    if args.crowd:
        crowd(models, args.crowd_step, args.crowd_sheet)
    if args.e2e:
        e2e()
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
