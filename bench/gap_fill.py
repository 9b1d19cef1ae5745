"""Gap filling and detection at the footage's scale (issue 16): before vs after, side by side.

"Before" is each preset with the new keys set to what the code did until now (no gap filling,
no second detector, detection on a copy of ``detect_max_side`` px: 360 balanced, 320 fast, 720
quality); "after" is the preset as shipped. For every clip and preset it prints:

- visible: frames where the ``quality`` detector (as shipped: HOG, 48 px faces) finds a face
  in the original frame; unswapped: those of them with no planned face (the render repaints
  every planned face, so this is the count of visible frames left as the original), with the
  longest run of them;
- tracks, the mean landmark jitter of the preset's smoothing over the swapped tracks (RMS
  acceleration, px/frame², ``pipeline.track_jitter``) and the analysis time.

``--crowd`` adds the 1080p crowd clip: per sampled frame, faces with a box side >= 60 px the
``quality`` detector finds in the full frame, and how many of them the balanced analysis
has a face for (box centre inside), before and after. ``--e2e`` runs bench/swap_e2e.py's
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

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("MMVIDEO_TEST_DATA", REPO.parent / "shared" / "data"))

from magicmask.checkpoint import default_checkpoint_path
from magicmask.face.analyzer import FaceAnalyzer
from mmvideo import pipeline
from mmvideo.config import load_config
from mmvideo.generate import load_models
from mmvideo.io.media import open_reader, probe_media

CLIPS = ("talking_head_jackie_chan_01.mp4", "talking_head_profile_occlusion_01.mp4")
OLD_MAX_SIDE = {"fast": 320, "balanced": 360, "quality": 720}


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


def analyse(clip: Path, preset: str, overrides: dict, models, stop: int | None = None):
    cfg = load_config(preset, overrides)
    info = probe_media(str(clip))
    stop = stop or info.video.frames
    t = time.perf_counter()
    analysis = pipeline.analyse(
        str(clip), info, cfg, FaceAnalyzer(pipeline.face_config(cfg.detect)), models, 0, stop
    )
    seconds = time.perf_counter() - t
    plan, selected, _ = pipeline.plan_faces(analysis, cfg, None, 0, stop)
    chosen = [t for t in analysis.tracks if t.id in selected]
    jit = pipeline.track_jitter(chosen, cfg).get(
        {"none": "raw"}.get(cfg.smooth.smoothing, cfg.smooth.smoothing), float("nan")
    )
    return analysis, plan, jit, seconds


def longest_run(frames: list[int]) -> int:
    best = run = 0
    for i, f in enumerate(frames):
        run = run + 1 if i and f == frames[i - 1] + 1 else 1
        best = max(best, run)
    return best


def _pct(missed: list[int], visible: list[int]) -> str:
    return f"{len(missed)} ({100 * len(missed) / max(1, len(visible)):.1f} %)"


def talking_heads(models) -> None:
    print("clip | preset | visible | unswapped before | after | longest run before | after "
          "| tracks before | after | jitter before | after | analyse s before | after")
    for name in CLIPS:
        clip = DATA / name
        visible = [f for f, boxes in visible_frames(clip).items() if boxes]
        for preset in ("fast", "balanced", "quality"):
            row = []
            for overrides in (before(preset), {}):
                analysis, plan, jit, seconds = analyse(clip, preset, overrides, models)
                missed = [f for f in visible if f not in plan]
                row.append((missed, len(analysis.tracks), jit, seconds))
            (mb, tb, jb, sb), (ma, ta, ja, sa) = row
            print(f"{name} | {preset} | {len(visible)} | {_pct(mb, visible)} | {_pct(ma, visible)} | "
                  f"{longest_run(mb)} | {longest_run(ma)} | {tb} | {ta} | {jb:.3f} | {ja:.3f} | "
                  f"{sb:.1f} | {sa:.1f}", flush=True)
            if ma:
                print(f"    unswapped visible frames after: {ma}")


def crowd(models, step: int) -> None:
    clip = DATA / "multi_face_crowd_walk_01.mp4"
    truth = visible_frames(clip, 60, step)
    print("\ncrowd 1080p, balanced | faces >= 60 px (quality detector) | found before | after "
          "| tracks before | after")
    counts = []
    for overrides in (before("balanced"), {}):
        analysis, _, _, seconds = analyse(clip, "balanced", overrides, models)
        found = 0
        for f, boxes in truth.items():
            faces = [t.faces[f] for t in analysis.tracks if f in t.faces]
            for b in boxes:
                cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
                found += any(g.box[0] <= cx <= g.box[2] and g.box[1] <= cy <= g.box[3] for g in faces)
        counts.append((found, len(analysis.tracks), seconds))
    total = sum(len(b) for b in truth.values())
    (fb, tb, sb), (fa, ta, sa) = counts
    print(f"frames {sorted(truth)} | {total} | {fb} | {fa} | {tb} | {ta} (analyse {sb:.0f} s / {sa:.0f} s)")


def e2e() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    from swap_e2e import bench, report

    clip, source = DATA / "talking_head_obama_address_01.mp4", DATA / "id_biden_01.jpg"
    flags = ("--gap-seconds", "0", "--second-detector", "none", "--smallest-face", "0",
             "--detect-max-side", "360")
    with tempfile.TemporaryDirectory() as tmp:
        for label, extra in (("before", flags), ("after", ())):
            res = bench(clip, source, default_checkpoint_path(), "balanced", None, Path(tmp), extra)
            report(f"{clip.name} balanced, {label}", *res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crowd", action="store_true")
    ap.add_argument("--crowd-step", type=int, default=10, help="every Nth crowd frame is counted")
    ap.add_argument("--e2e", action="store_true")
    ap.add_argument("--skip-clips", action="store_true")
    args = ap.parse_args()
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at start")
    models = load_models(None)
    if not args.skip_clips:
        talking_heads(models)
    if args.crowd:
        crowd(models, args.crowd_step)
    if args.e2e:
        e2e()
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
