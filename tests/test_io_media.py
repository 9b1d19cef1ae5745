"""Generated test clips (rotation, VFR, 10-bit, odd sizes, audio) and checks that they are what
the other I/O tests assume. Other ``test_io_*`` modules import ``make_clip`` from here."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest


def pattern(index: int, width: int, height: int, deep: bool = False) -> np.ndarray:
    """A frame that differs per index (moving bar, gradient) and compresses well."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack(
        [
            (x * 255) // max(width - 1, 1),
            (y * 255) // max(height - 1, 1),
            np.full_like(x, (index * 37) % 256),
        ],
        axis=-1,
    ).astype(np.uint16)
    bar = (index * 7) % max(width - 8, 1)
    img[:, bar : bar + 8] = 255 - img[:, bar : bar + 8]
    img[: height // 4, : width // 4] = 255  # a bright corner shows the orientation
    return (img * 257).astype(np.uint16) if deep else img.astype(np.uint8)


def make_clip(
    path: Path,
    frames: int = 10,
    size: tuple[int, int] = (64, 48),
    rate: int = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int | None = None,
    hflip: bool = False,
    audio: bool = False,
    colour: tuple[int, int, int, int] | None = None,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
) -> list[np.ndarray]:
    """Write a clip with PyAV and return the RGB frames that were fed to the encoder."""
    width, height = size
    tb = time_base or Fraction(1, rate * 512)
    deep = "10" in pix_fmt or "16" in pix_fmt
    images = [pattern(i, width, height, deep) for i in range(frames)]
    pts = pts if pts is not None else [round(i / rate / tb) for i in range(frames)]
    with av.open(str(path), "w", options=container_options or {}) as out:
        video = out.add_stream(codec, rate=rate)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.codec_context.time_base = tb
        video.time_base = tb
        video.options = options or {}
        if colour is not None:
            cc = video.codec_context
            cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = colour
        if rotation is not None:
            video.set_display_rotation(rotation, hflip=hflip)
        sound = None
        if audio:
            sound = out.add_stream("aac", rate=48000)
            sound.layout = "stereo"
        for img, t in zip(images, pts):
            vf = av.VideoFrame.from_ndarray(img, format="rgb48le" if deep else "rgb24")
            kwargs = {}
            if colour is not None:
                kwargs = {"dst_colorspace": colour[2], "dst_color_range": colour[3]}
            vf = vf.reformat(format=pix_fmt, **kwargs)
            vf.pts, vf.time_base = t, tb
            for packet in video.encode(vf):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if sound is not None:
            seconds = (pts[-1] * tb) + Fraction(1, rate)
            samples = int(seconds * 48000)
            t = np.arange(samples) / 48000
            wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = np.stack([wave[start : start + 1024]] * 2)
                af = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(chunk), format="fltp", layout="stereo"
                )
                af.sample_rate, af.pts = 48000, start
                for packet in sound.encode(af):
                    out.mux(packet)
            for packet in sound.encode(None):
                out.mux(packet)
    return images


def test_generated_rotation_is_in_the_container(tmp_path):
    clip = tmp_path / "rot.mp4"
    make_clip(clip, frames=3, rotation=90)
    with av.open(str(clip)) as c:
        frame = next(c.decode(video=0))
        assert frame.rotation == 90


def test_generated_vfr_keeps_its_timestamps(tmp_path):
    clip = tmp_path / "vfr.mp4"
    pts = [0, 1000, 3000, 3500, 7000]
    make_clip(clip, frames=5, pts=pts, time_base=Fraction(1, 10000))
    with av.open(str(clip)) as c:
        assert [f.pts for f in c.decode(video=0)] == pts


@pytest.mark.parametrize("pix_fmt", ["yuv420p10le"])
def test_generated_10bit_decodes_as_10bit(tmp_path, pix_fmt):
    clip = tmp_path / "deep.mkv"
    make_clip(clip, frames=2, pix_fmt=pix_fmt)
    with av.open(str(clip)) as c:
        assert next(c.decode(video=0)).format.name == pix_fmt
