"""I/O pass-through speed: `mmvideo transcode` against the ffmpeg command line, same clip, same
codec settings, run alternately in one process so both see the same machine load.

    .venv/bin/python bench/io_passthrough.py [CLIP ...] [--preset medium] [--crf 18] [--repeat 3]

Prints frames per second of both and ours/ffmpeg (goal >= 0.9). Our path is the swap's reader
and writer; frames nobody changes reach the encoder as decoded (YUV), as in ffmpeg.
Note: the ffmpeg CLI is the system build, ours is PyAV's bundled FFmpeg/x264; both are printed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

from mmvideo.io.probe import probe

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CLIPS = [
    REPO.parent / "shared" / "data" / "talking_head_expressions_pose_01.mp4",
    REPO.parent / "shared" / "data" / "multi_face_crowd_walk_01.mp4",
]


def ffmpeg_cmd(clip: Path, out: Path, preset: str, crf: int) -> list[str]:
    return [
        "ffmpeg", "-nostdin", "-y", "-v", "error", "-i", str(clip), "-map", "0:v:0", "-map", "0:a?",
        "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
        "-c:a", "copy", "-movflags", "+faststart", str(out),
    ]  # fmt: skip


def ours_cmd(clip: Path, out: Path, preset: str, crf: int) -> list[str]:
    return [
        sys.executable, "-m", "mmvideo", "transcode", "-y", "--no-progress", "--codec", "libx264",
        "--encoder-preset", preset, "--crf", str(crf), str(clip), str(out),
    ]  # fmt: skip


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def versions() -> str:
    system = subprocess.run(["ffmpeg", "-version"], check=True, capture_output=True, text=True)
    system = system.stdout
    lavc = av.library_versions["libavcodec"]
    return f"system {system.splitlines()[0]}; PyAV {av.__version__} (libavcodec {'.'.join(map(str, lavc))})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--crf", type=int, default=18)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(versions())
    print(
        f"libx264 preset={args.preset} crf={args.crf} yuv420p, audio copied, +faststart; "
        f"median of {args.repeat} alternating runs, wall clock incl. process start"
    )
    print(f"{'clip':40} {'size':>10} {'frames':>6} {'ffmpeg fps':>10} {'ours fps':>9} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for clip in args.clips:
            info = probe(clip)
            n = info.video.frames
            theirs, ours = [], []
            for i in range(args.repeat):
                theirs.append(
                    timed(ffmpeg_cmd(clip, Path(tmp) / f"ff{i}.mp4", args.preset, args.crf))
                )
                ours.append(timed(ours_cmd(clip, Path(tmp) / f"mm{i}.mp4", args.preset, args.crf)))
            assert probe(Path(tmp) / "mm0.mp4").video.frames == n
            fps_ff, fps_mm = n / statistics.median(theirs), n / statistics.median(ours)
            size = f"{info.video.width}x{info.video.height}"
            print(
                f"{clip.name:40} {size:>10} {n:>6} {fps_ff:>10.1f} {fps_mm:>9.1f} {fps_mm / fps_ff:>6.2f}"
            )


if __name__ == "__main__":
    main()
