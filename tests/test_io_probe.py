"""probe() and VideoReader on real clips and generated edge cases (rotation, VFR, 10-bit, odd size,
one frame), with ffmpeg's own decode as the reference for pixels and orientation."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
from media import ffmpeg, make_clip

from mmvideo.commands import main
from mmvideo.io.decode import VideoReader
from mmvideo.io.orientation import apply_transform, upright_transform
from mmvideo.io.probe import probe


def ffmpeg_rgb(path, width, height, pix_fmt="rgb24"):
    """Frames as the ffmpeg command line decodes them (autorotate on)."""
    raw = ffmpeg("-i", path, "-f", "rawvideo", "-pix_fmt", pix_fmt, "-")
    dtype = np.uint8 if pix_fmt == "rgb24" else np.dtype("<u2")
    return np.frombuffer(raw, dtype).reshape(-1, height, width, 3)


def test_probe_real_clip_with_audio(data_dir):
    info = probe(data_dir / "talking_head_turn_01.mp4")
    v = info.video
    assert (v.width, v.height, v.codec, v.bit_depth) == (224, 224, "h264", 8)
    assert v.fps == 25 and not v.vfr and v.frames == 128 and v.rotation == 0
    assert abs(v.duration - 5.12) < 0.01
    (audio,) = info.audio
    assert (audio.codec, audio.sample_rate, audio.channels, audio.layout) == (
        "aac",
        16000,
        1,
        "mono",
    )


def test_probe_counts_decoded_frames_not_header_frames(data_dir):
    # header says 158, an edit list discards the first 103: ffmpeg and we output 55
    v = probe(data_dir / "talking_head_obama_news_01.mp4").video
    assert (v.frames, v.header_frames) == (55, 158)
    assert v.color.names() == {
        "primaries": "bt709",
        "transfer": "bt709",
        "matrix": "bt709",
        "range": "tv",
    }
    with VideoReader(data_dir / "talking_head_obama_news_01.mp4") as reader:
        pts = [f.pts for f in reader]
    assert len(pts) == 55 and tuple(pts) == v.frame_pts


def test_reader_matches_ffmpeg_pixels_on_real_clip(data_dir):
    path = data_dir / "talking_head_jackie_chan_01.mp4"  # odd-ish 410x412, audio first
    with VideoReader(path) as reader:
        frames = list(reader)
    ref = ffmpeg_rgb(path, 410, 412)
    assert len(frames) == len(ref) == 169
    assert [f.index for f in frames] == list(range(169))
    assert all(np.array_equal(f.image, r) for f, r in zip(frames, ref))
    assert frames[0].image.dtype == np.uint8 and frames[0].image.shape == (412, 410, 3)


@pytest.mark.parametrize(
    ("rotation", "hflip", "transform"),
    [
        (90, False, "cclock"),
        (180, False, "rotate180"),
        (270, False, "clock"),
        (90, True, "clock_flip"),
    ],
)
def test_rotation_is_baked_in_like_ffmpeg(tmp_path, rotation, hflip, transform):
    clip = tmp_path / "rot.mp4"
    stored = make_clip(clip, frames=3, size=(64, 48), rotation=rotation, hflip=hflip)
    info = probe(clip)
    assert info.video.transform == transform
    swapped = rotation in (90, 270)
    assert (info.video.width, info.video.height) == ((48, 64) if swapped else (64, 48))
    with VideoReader(clip) as reader:
        frames = list(reader)
    ref = ffmpeg_rgb(clip, info.video.width, info.video.height)
    assert all(np.array_equal(f.image, r) for f, r in zip(frames, ref))
    # the bright top-left corner of the stored frame moved where the transform puts it
    upright = apply_transform(stored[0], transform)
    assert np.abs(frames[0].image.astype(int) - upright).mean() < 4


def test_upright_transform_without_matrix_is_identity():
    assert upright_transform(None) == "none"


def test_vfr_timestamps_are_reported_and_kept(tmp_path):
    clip = tmp_path / "vfr.mp4"
    pts = [0, 1000, 3000, 3500, 7000, 7400]
    make_clip(clip, frames=6, pts=pts, time_base=Fraction(1, 10000))
    info = probe(clip)
    assert info.video.vfr and info.video.frames == 6
    with VideoReader(clip) as reader:
        assert [f.pts for f in reader] == pts


def test_10bit_decodes_to_uint16(tmp_path):
    clip = tmp_path / "deep.mkv"
    source = make_clip(clip, frames=3, pix_fmt="yuv420p10le", color=(9, 16, 9, 1), codec="ffv1")
    info = probe(clip)
    assert info.video.bit_depth == 10 and info.video.pix_fmt == "yuv420p10le"
    assert info.video.color.names()["transfer"] == "smpte2084"
    with VideoReader(clip) as reader:
        frames = list(reader)
    assert frames[0].image.dtype == np.uint16
    # lossless 10-bit 4:2:0 storage: only quantisation and chroma subsampling separate us from
    # the source (ffmpeg's CLI rounds its rgb48 conversion slightly differently, so not bit-exact)
    for f, s in zip(frames, source):
        assert np.abs(f.image.astype(int) - s).mean() < 0.03 * 65535
    # more than 8 bits of information survive (not an 8-bit value scaled by 257)
    assert np.any(frames[0].image % 257 != 0)


def test_odd_size_and_one_frame(tmp_path):
    clip = tmp_path / "odd.mp4"
    make_clip(clip, frames=1, size=(641, 359), pix_fmt="yuv444p")
    info = probe(clip)
    assert (info.video.width, info.video.height, info.video.frames) == (641, 359, 1)
    with VideoReader(clip) as reader:
        (frame,) = list(reader)
    assert frame.image.shape == (359, 641, 3)


def test_range_read_is_frame_exact(data_dir):
    path = data_dir / "talking_head_turn_02.mp4"
    with VideoReader(path) as reader:
        everything = list(reader)
    with VideoReader(path, start=50, stop=55) as reader:
        part = list(reader)
    assert [f.index for f in part] == [50, 51, 52, 53, 54]
    for f in part:
        assert f.pts == everything[f.index].pts
        assert np.array_equal(f.image, everything[f.index].image)


def test_probe_cli_json(data_dir, capsys):
    assert main(["probe", "--json", str(data_dir / "talking_head_vox_01.mp4")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["video"]["frames"] == 174 and data["video"]["fps"] == "25/1"
    assert [s["type"] for s in data["streams"]] == ["video", "audio"]


def test_probe_cli_text(data_dir, capsys):
    assert main(["probe", str(data_dir / "talking_head_obama_news_01.mp4")]) == 0
    out = capsys.readouterr().out
    assert "1280x720" in out and "55 frames (header says 158)" in out and "audio #1" in out


def test_interlaced_flag_reported(tmp_path):
    clip = tmp_path / "tff.mp4"
    make_clip(clip, frames=3, options={"x264-params": "interlaced=1:tff=1"})
    assert probe(clip).video.interlaced
    with VideoReader(clip) as reader:
        assert all(f.interlaced for f in reader)
    progressive = tmp_path / "p.mp4"
    make_clip(progressive, frames=2)
    assert not probe(progressive).video.interlaced
