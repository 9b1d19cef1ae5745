"""End-to-end speed of `mmvideo swap` vs `mmvideo transcode` of the same clip, side by side.

Both run as child processes of this script in the same run, with the same encoder settings
(the preset's codec, CRF and x264 preset), so the ratio isolates the face work. Prints fps of
each, the ratio, the swap's time per stage and each child's peak RSS.

    .venv/bin/python bench/swap_e2e.py                     # 360p-class clip, tiny random model
    .venv/bin/python bench/swap_e2e.py --clip X.mp4 --stop 50 --checkpoint model.pt
    .venv/bin/python bench/swap_e2e.py --memory    # also a 1080p clip at two lengths (peak RSS)

Without ``--checkpoint`` a randomly initialised tiny generator is saved to a temp folder (speed
does not depend on the weights). Figures are only comparable within one run of this script.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("MMVIDEO_TEST_DATA", REPO.parent / "shared" / "data"))
MMVIDEO = [sys.executable, "-m", "mmvideo"]


def run_measured(args: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB, the child's own rusage via ``wait4``) and stdout of a child."""
    t = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed ({os.waitstatus_to_exitcode(status)}): {' '.join(args)}")
    return wall, usage.ru_maxrss / 1024, out


def tiny_checkpoint(folder: Path) -> Path:
    import torch

    from magicmask.checkpoint import save_checkpoint
    from magicmask.model import create_generator

    torch.manual_seed(0)
    gen = create_generator("tiny", identity_dim=128)
    path = folder / "tiny-random.pt"
    save_checkpoint(path, gen, gen.cfg, "dlib-resnet")
    return path


def frame_count(path: Path) -> int:
    from mmvideo.io.probe import probe

    return probe(path).video.frames


def bench(
    clip: Path,
    source: Path,
    checkpoint: Path,
    preset: str,
    stop: int | None,
    tmp: Path,
    extra: tuple[str, ...] = (),
):
    from mmvideo.config import load_config

    enc = load_config(preset).encode
    frames = frame_count(clip) if stop is None else min(stop, frame_count(clip))
    trans_in = clip
    if stop is not None:
        # transcode has no range option: cut the same frames losslessly first (not timed)
        trans_in = tmp / f"cut{clip.suffix}"
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-i",
                str(clip),
                "-frames:v",
                str(frames),
                "-c",
                "copy",
                str(trans_in),
            ],
            check=True,
        )
    t_wall, t_rss, _ = run_measured(
        MMVIDEO
        + [
            "transcode",
            str(trans_in),
            str(tmp / "transcoded.mp4"),
            "--crf",
            str(enc.crf),
            "--encoder-preset",
            enc.encoder_preset,
            "--no-progress",
        ]
    )
    swap_args = MMVIDEO + [
        "swap",
        "--source",
        str(source),
        "--in",
        str(clip),
        "--out",
        str(tmp / "swapped.mp4"),
        "--preset",
        preset,
        "--checkpoint",
        str(checkpoint),
        "--json-progress",
    ]
    if stop is not None:
        swap_args += ["--stop", str(stop)]
    swap_args += list(extra)
    s_wall, s_rss, out = run_measured(swap_args)
    summary = json.loads(out.strip().splitlines()[-1])["summary"]
    return frames, (t_wall, t_rss), (s_wall, s_rss), summary


def report(name: str, frames: int, trans, swap, summary) -> None:
    t_fps, s_fps = frames / trans[0], frames / swap[0]
    print(f"\n== {name}: {frames} frames ==")
    print(f"mmvideo transcode : {trans[0]:7.2f} s  {t_fps:7.2f} fps  peak RSS {trans[1]:7.0f} MiB")
    print(f"mmvideo swap      : {swap[0]:7.2f} s  {s_fps:7.2f} fps  peak RSS {swap[1]:7.0f} MiB")
    print(f"swap / transcode  : {s_fps / t_fps:7.3f} x speed, {swap[0] / trans[0]:.2f} x time")
    stages = summary["stage_seconds"]
    busy = ", ".join(f"{k} {v:.2f}s ({1000 * v / frames:.1f} ms/frame)" for k, v in stages.items())
    print(f"swap stage busy time (stages overlap in render): {busy}")
    print(
        f"tracks {summary['tracks']}, faces swapped {summary['faces_per_track']}, "
        f"frames without face {summary['frames_without_face']}, jitter {summary['jitter']}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path, default=DATA / "talking_head_obama_address_01.mp4")
    ap.add_argument("--source", type=Path, default=DATA / "id_biden_01.jpg")
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--preset", default="balanced")
    ap.add_argument("--stop", type=int, help="only the first N frames")
    ap.add_argument(
        "--memory",
        action="store_true",
        help="also the 1080p crowd clip at 30 frames and in full, for peak RSS",
    )
    args = ap.parse_args()
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ckpt = args.checkpoint or tiny_checkpoint(tmp)
        frames, trans, swap, summary = bench(
            args.clip, args.source, ckpt, args.preset, args.stop, tmp
        )
        report(f"{args.clip.name} ({args.preset})", frames, trans, swap, summary)
        if args.memory:
            # small faces: detect at full size; swap the largest track so the run stays short
            crowd = DATA / "multi_face_crowd_walk_01.mp4"
            extra = ("--detect-max-side", "1920", "--target", "largest")
            for stop in (30, None):
                res = bench(crowd, args.source, ckpt, args.preset, stop, tmp, extra)
                report(f"{crowd.name} 1080p ({args.preset}, {' '.join(extra)})", *res)
    print(f"\nload average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
