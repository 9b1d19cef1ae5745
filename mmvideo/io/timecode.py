"""SMPTE timecode and frame ranges: parse, format, count, and read from the places it is kept.

A timecode is held as a frame count since 00:00:00:00 at a nominal rate, so arithmetic (frame N
of a chunk, the start of a merged output) is integer arithmetic; the HH:MM:SS:FF label is derived
when written. Drop-frame (29.97 and 59.94 only) skips frame labels 0 and 1 (0–3 at 59.94) at the
start of every minute except each tenth, as SMPTE ST 12-1 defines, so the label tracks wall-clock
time.

Where timecode lives: video containers carry it as a ``timecode`` tag on the container, the video
stream or a ``tmcd`` data stream (ffmpeg's mov/mp4 muxer turns a container ``timecode`` tag into a
tmcd track); DPX and EXR headers carry SMPTE's packed BCD form, which OpenImageIO exposes as the
``smpte:TimeCode`` attribute.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from mmcore.errors import InvalidInput

_TC_RE = re.compile(r"^\s*(\d{1,2})[:.](\d{2})[:.](\d{2})([:;.,])(\d{2,3})\s*$")
_RANGE_RE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")
_DAY_SECONDS = 24 * 3600


class InvalidTimecode(InvalidInput):
    """A timecode string or header field does not parse, or does not fit the frame rate."""


def _nominal(rate: Fraction) -> int:
    return round(rate)


def _drop_per_minute(rate: Fraction) -> int:
    # 29.97 drops 2 labels a minute, 59.94 drops 4; no other rate has a drop-frame form.
    return 2 * _nominal(rate) // 30


def _can_drop(rate: Fraction) -> bool:
    return _nominal(rate) in (30, 60) and rate != _nominal(rate)


@dataclass(frozen=True)
class Timecode:
    """A timecode: ``frames`` counted from 00:00:00:00 at ``rate`` (drop-frame if ``drop``)."""

    frames: int
    rate: Fraction
    drop: bool = False

    @property
    def fps(self) -> int:
        """The nominal (integer) frame rate that frame labels count to."""
        return _nominal(self.rate)

    def frames_per_day(self) -> int:
        if not self.drop:
            return self.fps * _DAY_SECONDS
        per_10min = self.fps * 600 - 9 * _drop_per_minute(self.rate)
        return per_10min * 6 * 24

    def __add__(self, offset: int) -> Timecode:
        return Timecode((self.frames + offset) % self.frames_per_day(), self.rate, self.drop)

    def fields(self) -> tuple[int, int, int, int]:
        """(hours, minutes, seconds, frames) of the label."""
        fps, count = self.fps, self.frames
        if self.drop:
            dpm = _drop_per_minute(self.rate)
            per_10min = fps * 600 - 9 * dpm
            per_min = fps * 60 - dpm
            tens, rem = divmod(count, per_10min)
            count += 9 * dpm * tens
            if rem > dpm:
                count += dpm * ((rem - dpm) // per_min)
        ff = count % fps
        seconds = count // fps
        return seconds // 3600 % 24, seconds // 60 % 60, seconds % 60, ff

    def __str__(self) -> str:
        hh, mm, ss, ff = self.fields()
        sep = ";" if self.drop else ":"
        width = max(2, len(str(self.fps - 1)))
        return f"{hh:02d}:{mm:02d}:{ss:02d}{sep}{ff:0{width}d}"

    def to_smpte_words(self) -> tuple[int, int]:
        """SMPTE ST 12-1 packed BCD (time word, user bits) as DPX and EXR headers store it."""
        hh, mm, ss, ff = self.fields()

        def bcd(v: int) -> int:
            return (v // 10) << 4 | (v % 10)

        word = bcd(hh) << 24 | bcd(mm) << 16 | bcd(ss) << 8 | bcd(ff % 100)
        if self.drop:
            word |= 1 << 6  # drop-frame flag lives in bit 6 of the frames byte
        return word, 0


def from_fields(
    hh: int,
    mm: int,
    ss: int,
    ff: int,
    rate: Fraction,
    drop: bool = False,
    *,
    source: str = "timecode",
) -> Timecode:
    """Build a timecode from its label, checking each field against the rate."""
    rate = Fraction(rate)
    fps = _nominal(rate)
    label = f"{hh:02d}:{mm:02d}:{ss:02d}{';' if drop else ':'}{ff:02d}"
    if fps <= 0:
        raise InvalidTimecode(f"{source}: frame rate {rate} cannot carry a timecode")
    if drop and not _can_drop(rate):
        raise InvalidTimecode(
            f"{source}: drop-frame timecode {label} at {float(rate):g} fps "
            "(drop-frame exists only at 29.97 and 59.94)"
        )
    if hh > 23 or mm > 59 or ss > 59 or ff >= fps:
        raise InvalidTimecode(f"{source}: timecode {label} is out of range at {float(rate):g} fps")
    dpm = _drop_per_minute(rate) if drop else 0
    if drop and ss == 0 and mm % 10 != 0 and ff < dpm:
        raise InvalidTimecode(f"{source}: {label} is a label that drop-frame timecode skips")
    total_minutes = hh * 60 + mm
    frames = (total_minutes * 60 + ss) * fps + ff - dpm * (total_minutes - total_minutes // 10)
    return Timecode(frames, rate, drop)


def parse_timecode(text: str, rate: Fraction | float, *, source: str = "timecode") -> Timecode:
    """Parse ``HH:MM:SS:FF`` (``;`` or ``,`` before the frames means drop-frame).

    ``source`` names where the text came from (a file, a flag) for the error message.
    """
    match = _TC_RE.match(str(text))
    if match is None:
        raise InvalidTimecode(f"{source}: timecode {text!r} does not parse (expected HH:MM:SS:FF)")
    hh, mm, ss, sep, ff = match.groups()
    return from_fields(
        int(hh), int(mm), int(ss), int(ff), Fraction(rate), sep in ";,", source=source
    )


def from_smpte_words(
    words: tuple[int, int] | list[int],
    rate: Fraction | float,
    *,
    source: str = "header",
) -> Timecode:
    """Decode SMPTE packed BCD (the DPX/EXR header form) at ``rate``."""
    word = int(words[0])

    def unbcd(byte: int, mask: int) -> int:
        byte &= mask
        hi, lo = byte >> 4, byte & 0xF
        if hi > 9 or lo > 9:
            raise InvalidTimecode(f"{source}: timecode field 0x{word:08x} is not BCD")
        return hi * 10 + lo

    drop = bool(word & (1 << 6))
    return from_fields(
        unbcd(word >> 24, 0x3F),
        unbcd(word >> 16, 0x7F),
        unbcd(word >> 8, 0x7F),
        unbcd(word, 0x3F),
        Fraction(rate),
        drop and _can_drop(Fraction(rate)),
        source=source,
    )


def read_video_timecode(path: str | Path) -> str | None:
    """The start timecode a video file declares (container, video stream or tmcd track), or None.

    The label is returned as written; parse it with the stream's frame rate.
    """
    import av  # imported here so timecode arithmetic does not load FFmpeg

    with av.open(str(path)) as container:
        tags = [dict(container.metadata)]
        tags += [dict(s.metadata) for s in container.streams if s.type in ("video", "data")]
    for tag in tags:
        # Matroska upper-cases tag names (TIMECODE); mov/mp4 keep them as written.
        value = next((v for k, v in tag.items() if k.lower() == "timecode" and v), None)
        if value:
            return value
    return None


@dataclass(frozen=True)
class FrameRange:
    """An inclusive range of frame numbers, as ``--frames A-B`` names it."""

    first: int
    last: int

    def __len__(self) -> int:
        return self.last - self.first + 1

    def __contains__(self, frame: object) -> bool:
        return isinstance(frame, int) and self.first <= frame <= self.last

    def with_warmup(self, warmup: int, earliest: int = 0) -> FrameRange:
        """The range to decode so that temporal smoothing is settled by ``first``."""
        return FrameRange(max(earliest, self.first - warmup), self.last)

    def spread(self, count: int) -> list[int]:
        """``count`` frame numbers spread evenly over the range, ends included."""
        if count <= 1 or len(self) == 1:
            return [self.first]
        count = min(count, len(self))
        step = (self.last - self.first) / (count - 1)
        return [self.first + round(i * step) for i in range(count)]


def parse_frame_range(text: str, *, source: str = "--frames") -> FrameRange:
    """Parse ``A-B`` (inclusive, A <= B) into a FrameRange."""
    match = _RANGE_RE.match(str(text))
    if match is None:
        raise InvalidInput(f"{source}: {text!r} is not a frame range (expected A-B, e.g. 100-160)")
    first, last = int(match.group(1)), int(match.group(2))
    if last < first:
        raise InvalidInput(f"{source}: range {text!r} ends before it starts")
    return FrameRange(first, last)
