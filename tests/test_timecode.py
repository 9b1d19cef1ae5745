"""Timecode parsing, formatting and arithmetic; frame ranges; reading timecode from a video file."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from media import encode_images

from mmcore.errors import InvalidInput
from mmvideo.io.timecode import (
    FrameRange,
    InvalidTimecode,
    Timecode,
    from_smpte_words,
    parse_frame_range,
    parse_timecode,
    read_video_timecode,
)

NTSC = Fraction(30000, 1001)


@pytest.mark.parametrize(
    ("text", "rate", "frames", "label"),
    [
        ("00:00:00:00", 24, 0, "00:00:00:00"),
        ("01:00:00:00", 24, 86400, "01:00:00:00"),
        ("10:20:30:12", 25, ((10 * 60 + 20) * 60 + 30) * 25 + 12, "10:20:30:12"),
        ("23:59:59:29", 30, 24 * 3600 * 30 - 1, "23:59:59:29"),
        ("1:02:03:04", 24, (3600 + 120 + 3) * 24 + 4, "01:02:03:04"),
        # drop-frame: the published SMPTE examples
        ("00:01:00;02", NTSC, 1800, "00:01:00;02"),
        ("00:00:59;29", NTSC, 1799, "00:00:59;29"),
        ("00:10:00;00", NTSC, 17982, "00:10:00;00"),
        ("01:00:00;00", NTSC, 107892, "01:00:00;00"),
        ("00:01:00;04", Fraction(60000, 1001), 3600, "00:01:00;04"),
    ],
)
def test_parse_and_format_round_trip(text, rate, frames, label):
    tc = parse_timecode(text, rate)
    assert tc.frames == frames
    assert str(tc) == label


def test_drop_frame_labels_are_contiguous_for_an_hour():
    labels = [str(Timecode(n, NTSC, True)) for n in range(0, 107892, 7)]
    assert all(parse_timecode(lbl, NTSC).frames == n for lbl, n in zip(labels, range(0, 107892, 7)))
    assert "00:01:00;00" not in {str(Timecode(n, NTSC, True)) for n in range(1790, 1810)}


def test_addition_wraps_at_midnight():
    tc = parse_timecode("23:59:59:23", 24)
    assert str(tc + 1) == "00:00:00:00"
    assert str(parse_timecode("00:00:00:00", 24) + -1) == "23:59:59:23"


@pytest.mark.parametrize(
    ("text", "rate", "needle"),
    [
        ("garbage", 24, "does not parse"),
        ("01:00:00", 24, "does not parse"),
        ("01:00:00:24", 24, "out of range"),
        ("24:00:00:00", 24, "out of range"),
        ("00:61:00:00", 25, "out of range"),
        ("00:00:00;00", 25, "drop-frame exists only"),
        ("00:01:00;00", NTSC, "skips"),
    ],
)
def test_bad_timecode_is_a_one_line_error(text, rate, needle):
    with pytest.raises(InvalidTimecode) as info:
        parse_timecode(text, rate, source="plate.exr")
    message = str(info.value)
    assert needle in message and message.startswith("plate.exr: ") and "\n" not in message
    assert isinstance(info.value, InvalidInput)


@pytest.mark.parametrize(
    ("text", "rate"), [("01:02:03:04", 24), ("12:34:56;28", NTSC), ("00:00:00:00", 25)]
)
def test_smpte_words_round_trip(text, rate):
    tc = parse_timecode(text, rate)
    word, user = tc.to_smpte_words()
    assert user == 0
    assert from_smpte_words((word, 0), rate) == tc


def test_smpte_words_are_bcd():
    assert parse_timecode("01:02:03:04", 24).to_smpte_words()[0] == 0x01020304
    with pytest.raises(InvalidTimecode, match="not BCD"):
        from_smpte_words((0x0102030F, 0), 24)


def test_frame_range_parse_spread_and_warmup():
    r = parse_frame_range("100-160")
    assert (r.first, r.last, len(r)) == (100, 160, 61)
    assert r.spread(4) == [100, 120, 140, 160]
    assert FrameRange(5, 6).spread(10) == [5, 6]
    assert r.with_warmup(30) == FrameRange(70, 160)
    assert FrameRange(10, 20).with_warmup(30, earliest=1) == FrameRange(1, 20)
    assert 100 in r and 161 not in r
    for bad in ("160-100", "100", "a-b", "-5-3"):
        with pytest.raises(InvalidInput, match="--frames"):
            parse_frame_range(bad)


def test_read_video_timecode_from_tmcd_track(tmp_path):
    path = tmp_path / "tc.mov"
    images = [np.full((48, 64, 3), i * 40, np.uint8) for i in range(3)]
    encode_images(path, images, "mpeg4", metadata={"timecode": "10:00:00:00"})
    with av.open(str(path)) as check:
        assert any(s.type == "data" for s in check.streams), "mov muxer wrote no tmcd track"
    assert read_video_timecode(path) == "10:00:00:00"


def test_read_video_timecode_none_when_absent(data_dir):
    assert read_video_timecode(data_dir / "talking_head_turn_01.mp4") is None
