"""Post hand-offs, side by side on the same frames in one run.

1. Watermark cost: ``watermark.embed`` per frame vs the libx264 (CRF 23, medium) encode of the
   same frame — the overhead ``--watermark`` adds to a render's encode stage.
2. Sequence reading: our OpenImageIO reader (``SequenceReader``, display-space frames) vs
   FFmpeg's image2 demuxer through PyAV (the baseline an ffmpeg-only tool would use), on 1080p
   half-float EXR and 10-bit DPX made from a real clip.

Usage: python bench/bench_post.py [--frames 10] [--clip PATH]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from mmvideo.io.frame import Frame
from mmvideo.io.sequence import SequenceReader
from mmvideo.io.sequence_write import SequenceWriter, SequenceWriterOptions
from mmvideo.post.watermark import detect, embed

DEFAULT_CLIP = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "multi_face_crowd_walk_01.mp4"
)


def decode(clip: Path, count: int) -> list[np.ndarray]:
    with av.open(str(clip)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return frames


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def encode_x264(frames: list[np.ndarray], path: Path) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "23", "preset": "medium"}
        stream.codec_context.thread_count = 1
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, "rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def read_ffmpeg(pattern: str, count: int) -> None:
    with av.open(pattern, format="image2", options={"start_number": "1001"}) as container:
        for i, frame in enumerate(container.decode(video=0)):
            frame.to_ndarray(format="rgb48le" if "dpx" in pattern else "gbrpf32le")
            if i + 1 == count:
                break


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    args = parser.parse_args()
    frames = decode(args.clip, args.frames)
    n = len(frames)
    h, w = frames[0].shape[:2]
    print(f"{args.clip.name}: {n} frames {w}x{h}, 1 encoder thread")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        marked: list[np.ndarray] = []
        t_embed = timed(lambda: marked.extend(embed(f) for f in frames))
        t_detect = timed(lambda: detect(marked))
        t_encode = timed(lambda: encode_x264(frames, folder / "plain.mp4"))
        print(f"watermark embed   {1000 * t_embed / n:7.1f} ms/frame")
        print(f"watermark detect  {1000 * t_detect / n:7.1f} ms/frame")
        print(f"x264 CRF23 encode {1000 * t_encode / n:7.1f} ms/frame")
        print(f"embed / encode    {t_embed / t_encode:7.2f}x  (the overhead --watermark adds)")

        deep = [f.astype(np.uint16) * 257 for f in frames]
        for kind in ("exr", "dpx"):
            pattern = folder / f"plate.%04d.{kind}"
            options = SequenceWriterOptions(fps=Fraction(25), start_number=1001)
            with SequenceWriter(str(pattern), options=options) as writer:
                for i, image in enumerate(deep):
                    writer.write(Frame(i, i, Fraction(1, 25), image))
            ours = timed(lambda p=pattern: list(SequenceReader(str(p))))
            ffmpeg_pattern = str(pattern)
            base = timed(lambda p=ffmpeg_pattern: read_ffmpeg(p, n))
            print(
                f"read {kind.upper()} {w}x{h}: OpenImageIO {1000 * ours / n:6.1f} ms/frame, "
                f"FFmpeg image2 {1000 * base / n:6.1f} ms/frame, ratio {ours / base:5.2f}x"
            )


if __name__ == "__main__":
    main()
