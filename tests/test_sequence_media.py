"""Sequences standing where videos do: probe_media / open_reader / open_writer with the post
hand-offs (numbers, timecode, provenance tag, watermark) across sequence and video outputs."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import OpenImageIO as oiio
import pytest
from media import read_image, write_image

from mmcore.errors import InvalidInput
from mmvideo.io.codecs import EncodeOptions
from mmvideo.io.media import frame_range, open_reader, probe_media, source_timecode
from mmvideo.io.probe import probe
from mmvideo.io.sequence import probe_sequence
from mmvideo.io.timecode import InvalidTimecode, parse_timecode, read_video_timecode
from mmvideo.post.read_tag import read_provenance
from mmvideo.post.tag import make_tag
from mmvideo.post.verify import verify
from mmvideo.post.writer import PostOptions, open_writer

H, W = 128, 192  # big enough for the watermark's 64 bits (3 carriers each)
TAG = make_tag("ef" * 32)


def exr_plate(folder, numbers, tc="01:00:00:00"):
    rng = np.random.default_rng(5)
    start = parse_timecode(tc, 24)
    ramp = np.linspace(0.0, 1.2, W, dtype=np.float32)[None, :, None] * np.ones(
        (H, 1, 3), np.float32
    )
    base = (ramp + rng.normal(0, 0.02, (H, W, 3))).astype(np.float16).astype(np.float32)
    for n in numbers:
        pixels = np.clip(base * (1 + 0.01 * (n - numbers[0])), 0, None)
        tc = start + (n - numbers[0])
        write_image(folder / f"plate.{n:04d}.exr", pixels, "half", tc=tc, rate=24)
    return folder / "plate.####.exr"


def test_sequence_is_described_like_a_video(tmp_path):
    pattern = exr_plate(tmp_path, [1001, 1002, 1003, 1005])
    with pytest.raises(InvalidInput, match="missing frames 1004"):
        probe_media(pattern)
    info = probe_media(pattern, fill_missing=True)
    v = info.video
    assert (v.width, v.height, v.frames, v.fps, v.bit_depth) == (
        W,
        H,
        5,
        Fraction(24),
        16,
    )
    assert info.sequence.first == 1001
    assert frame_range("1002-1004", info) == (1, 4)
    with pytest.raises(InvalidInput, match="outside the sequence"):
        frame_range("990-1004", info)
    assert str(source_timecode(info)) == "01:00:00:00"
    assert str(source_timecode(info, override="02:00:00:00")) == "02:00:00:00"
    with pytest.raises(InvalidTimecode, match="--timecode: timecode '2h' does not parse"):
        source_timecode(info, override="2h")
    frames = list(open_reader(pattern, info, start=1, stop=4))
    assert [f.index for f in frames] == [1, 2, 3]


def test_exr_range_to_exr_keeps_numbers_timecode_and_tag(tmp_path):
    pattern = exr_plate(tmp_path, [1001, 1002, 1003, 1004])
    info = probe_media(pattern)
    start, stop = frame_range("1002-1003", info)
    post = PostOptions(provenance=TAG.to_text(), timecode=source_timecode(info))
    out = tmp_path / "out.%04d.exr"
    with open_writer(out, info, EncodeOptions(), start=start, post=post) as writer:
        for frame in open_reader(pattern, info, start=start, stop=stop):
            writer.write(frame)
    result = probe_sequence(str(out))
    assert result.frames == (1002, 1003)
    assert str(result.timecode) == "01:00:00:01"
    assert read_provenance(out) == TAG
    for n in (1002, 1003):  # nothing was changed, so every float comes back bit for bit
        a = read_image(tmp_path / f"plate.{n:04d}.exr")
        b = read_image(tmp_path / f"out.{n:04d}.exr")
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_exr_sequence_to_mp4_with_tag_timecode_and_watermark(tmp_path):
    pattern = exr_plate(tmp_path, list(range(1001, 1013)))
    info = probe_media(pattern)
    post = PostOptions(provenance=TAG.to_text(), timecode=source_timecode(info), watermark=True)
    out = tmp_path / "plate.mp4"
    with open_writer(out, info, EncodeOptions(crf=23), start=2, post=post) as writer:
        for frame in open_reader(pattern, info, start=2):
            writer.write(frame)
    assert probe(out).video.frames == 10
    assert read_provenance(out) == TAG
    assert read_video_timecode(out) == "01:00:00:02"
    report = verify(out)
    assert report.watermark.marked and report.timecode == "01:00:00:02"


def test_video_range_to_png_sequence(data_dir, tmp_path):
    clip = data_dir / "talking_head_turn_01.mp4"
    info = probe_media(clip)
    start, stop = frame_range("5-9", info)
    assert (start, stop) == (5, 10)
    post = PostOptions(
        provenance=TAG.to_text(),
        timecode=source_timecode(info, override="10:00:00:00"),
        sequence_options={"start_number": 1001},
    )
    out = tmp_path / "frames.%04d.png"
    with open_writer(out, info, EncodeOptions(), start=start, post=post) as writer:
        for frame in open_reader(clip, info, start=start, stop=stop):
            writer.write(frame)
    seq = probe_sequence(str(out))
    assert seq.frames == tuple(range(1006, 1011))  # start_number + position
    assert read_provenance(out) == TAG
    spec = oiio.ImageInput.open(str(tmp_path / "frames.1006.png")).spec()
    assert spec.getattribute("mmvideo:timecode") == "10:00:00:05"
    with pytest.raises(InvalidInput, match="goes past the last frame"):
        frame_range("100-200", info)
