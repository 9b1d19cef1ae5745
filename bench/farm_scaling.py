"""Render-farm scaling: one clip as 1, 2 and 4 chunks, on the local process pool and on Ray.

For each executor and chunk count: wall time of running every chunk (plan excluded), the
speed-up over one chunk on the same executor, and the merge (stream copy + audio mux) timed
separately. Every configuration uses all the cores it is given: one chunk runs with all torch
threads, N chunks as min(N, cores) parallel workers splitting the threads. Every merge checks
its frame count and timestamps against the source, as ``mmvideo merge`` always does.

    .venv/bin/python bench/farm_scaling.py [--clip FILE] [--frames 128] [--cores 2] [--no-ray]

The model is a randomly initialised ``tiny`` generator (speed does not depend on its weights).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from magicmask.checkpoint import save_checkpoint
from magicmask.config import create_config
from magicmask.model.generator import MagicMaskGenerator
from mmvideo.farm.chunk import run_chunk
from mmvideo.farm.executors import LocalExecutor, RayExecutor, Task
from mmvideo.farm.merge import merge
from mmvideo.farm.plan import make_plan, save_plan
from mmvideo.farm.scan import scan_video
from mmvideo.farm.swap import resolve_settings

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=DATA / "talking_head_turn_01.mp4")
    parser.add_argument("--source", type=Path, default=DATA / "id_obama_01.jpg")
    parser.add_argument("--frames", type=int, default=128, help="first N frames of the clip")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--chunks", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="farm-bench-"))
    try:
        return _run(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, work: Path) -> int:
    clip = work / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(args.clip), "-frames:v", str(args.frames), "-c:v", "libx264",
         "-c:a", "aac", "-shortest", str(clip)],
        check=True,
    )  # fmt: skip
    torch.manual_seed(0)
    cfg = create_config("tiny", identity_dim=128)
    model = work / "tiny.pt"
    save_checkpoint(
        model,
        MagicMaskGenerator(cfg),
        cfg,
        "dlib-resnet",
        {"note": "random, benchmark"},
    )
    frames = scan_video(clip).frames
    print(f"clip: {args.clip.name}, first {frames} frames; {args.cores} cores; work folder {work}")

    executors = {"local": None, "ray": None}
    if args.no_ray:
        del executors["ray"]
    rows = []
    timings: dict[tuple[str, int], float] = {}
    for name in executors:
        for chunks in args.chunks:
            workers = min(chunks, args.cores)
            threads = max(1, args.cores // workers)
            settings = resolve_settings("fast", model, {"threads": threads})
            job = work / f"{name}-{chunks}" / "job.json"
            plan = make_plan(job, clip, args.source, settings, chunks=chunks)
            save_plan(plan, job)
            tasks = [
                Task(run_chunk, (str(job), s.index), f"chunk {s.index}", s.frames)
                for s in plan.chunks
            ]
            if name == "local":
                executor = LocalExecutor(workers=workers, threads_per_worker=threads)
            else:
                executor = RayExecutor(cpus_per_task=threads)
            started = time.perf_counter()
            outcomes = executor.run(tasks)
            run_s = time.perf_counter() - started
            failed = [o.error for o in outcomes if not o.ok]
            if failed:
                print(f"{name} {chunks} chunks failed: {failed[0]}", file=sys.stderr)
                return 1
            record = merge(job, job.with_name("merged.mp4"))
            timings[(name, chunks)] = run_s
            base = timings.get((name, args.chunks[0]), run_s)
            rows.append(
                (
                    name,
                    chunks,
                    workers,
                    threads,
                    run_s,
                    base / run_s,
                    record.seconds,
                    record.frames,
                )
            )
    print()
    print(
        f"{'executor':8}  {'chunks':>6}  {'workers':>7}  {'threads':>7}  {'run s':>7}  {'speed-up':>8}  {'merge s':>7}  frames"
    )
    for name, chunks, workers, threads, run_s, ratio, merge_s, n in rows:
        print(
            f"{name:8}  {chunks:6d}  {workers:7d}  {threads:7d}  {run_s:7.1f}  {ratio:7.2f}x  {merge_s:7.2f}  {n}"
        )
    print(
        "\nspeed-up = wall time of 1 chunk / wall time of N chunks on the same executor (merge excluded)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
