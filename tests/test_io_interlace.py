"""Interlaced input keeps its field order through a re-encode (or the writer says it cannot).

The clips are made by the ffmpeg command line as a camera or broadcast file would be: x264 coding
fields (``-flags +ildct+ilme``) after ``setfield``; the outputs are judged by ffprobe, not by us.
"""

from __future__ import annotations

import logging
import subprocess

import pytest
from media import TESTSRC, ffmpeg

from mmvideo.io.codecs import EncodeOptions, encoder_settings
from mmvideo.io.probe import probe
from mmvideo.io.transcode import transcode


def interlaced_clip(path, order: str) -> None:
    ffmpeg(*TESTSRC, "-t", "0.4", "-vf", f"setfield={order}", "-flags", "+ildct+ilme",
           "-c:v", "libx264", path)  # fmt: skip


def ffprobe_fields(path) -> tuple[str, list[tuple[int, int]]]:
    """The stream's field_order and each frame's (interlaced_frame, top_field_first)."""

    def run(*args):
        return subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "v", *args, "-of", "csv=p=0", str(path)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip

    stream = run("-show_entries", "stream=field_order").strip()
    frames = [
        tuple(int(v) for v in line.strip(",").split(",")[:2])
        for line in run("-show_entries", "frame=interlaced_frame,top_field_first").split()
    ]
    return stream, frames


@pytest.mark.parametrize("order", ["tff", "bff"])
def test_probe_reads_the_field_order_of_the_frames(tmp_path, order):
    clip = tmp_path / f"{order}.mp4"
    interlaced_clip(clip, order)
    # the MP4 stream says "tt" for both (the H.264 parser's guess); the frames know
    assert probe(clip).video.field_order == order
    assert probe(clip).video.interlaced


@pytest.mark.parametrize("order", ["tff", "bff"])
@pytest.mark.parametrize(
    ("codec", "suffix", "stream_order"),
    [
        ("libx264", ".mp4", None),  # MP4 keeps the order in the H.264 pictures only
        ("libx264", ".mkv", {"tff": "tb", "bff": "bt"}),
        ("prores_ks", ".mov", {"tff": "tb", "bff": "bt"}),
        ("ffv1", ".mkv", {"tff": "tb", "bff": "bt"}),
    ],
)
@pytest.mark.parametrize("ffmpeg_args", [(), ("-g", "5")], ids=["pyav", "ffmpeg"])
def test_reencode_keeps_the_fields(tmp_path, order, codec, suffix, stream_order, ffmpeg_args):
    clip = tmp_path / f"{order}.mp4"
    interlaced_clip(clip, order)
    out = tmp_path / f"out{suffix}"
    transcode(clip, out, EncodeOptions(codec=codec, ffmpeg_args=ffmpeg_args))
    stream, frames = ffprobe_fields(out)
    top = int(order == "tff")
    assert frames == [(1, top)] * 10
    if stream_order:
        assert stream == stream_order[order]  # what ffmpeg itself writes for these files
    assert probe(out).video.field_order == order


@pytest.mark.parametrize("ffmpeg_args", [(), ("-g", "5")], ids=["pyav", "ffmpeg"])
def test_a_codec_without_field_coding_says_the_output_is_progressive(tmp_path, caplog, ffmpeg_args):
    clip = tmp_path / "tff.mp4"
    interlaced_clip(clip, "tff")
    out = tmp_path / "out.mkv"
    with caplog.at_level(logging.WARNING, logger="mmvideo.io.encode"):
        transcode(clip, out, EncodeOptions(codec="libx265", ffmpeg_args=ffmpeg_args))
    assert "interlaced (tff) but libx265 cannot code fields" in caplog.text
    assert probe(out).video.field_order == "progressive"


@pytest.mark.parametrize(
    ("codec", "flags", "kept"),
    [
        ("libx264", "+ildct+ilme", "bff"),
        ("prores_ks", "+ildct", "bff"),
        ("ffv1", None, "bff"),
        ("libx265", None, "progressive"),
        ("h264_nvenc", None, "progressive"),
        ("hevc_nvenc", None, "progressive"),
    ],
)
def test_field_coding_options_per_codec(codec, flags, kept):
    suffix = ".mov" if codec == "prores_ks" else ".mkv"
    s = encoder_settings(EncodeOptions(codec=codec), 8, "o" + suffix, (64, 48), "bff")
    assert (s.options.get("flags"), s.field_order) == (flags, kept)
    progressive = encoder_settings(EncodeOptions(codec=codec), 8, "o" + suffix, (64, 48))
    assert "flags" not in progressive.options and progressive.field_order == "progressive"
