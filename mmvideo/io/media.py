"""One way to open any input or output: a video file or an image sequence.

The swap pipeline reads ``MediaInfo`` and iterates ``Frame``s; these functions let an image
sequence stand where a video does (``probe_media`` describes it as a ``MediaInfo`` whose
``sequence`` field holds the :class:`SequenceInfo`). The post-production hand-offs (provenance
tag, watermark, C2PA) are ``mmvideo.post``'s, wrapped around :func:`open_writer`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from mmcore.errors import InvalidInput
from mmvideo.io.codecs import EncodeOptions
from mmvideo.io.decode import VideoReader
from mmvideo.io.probe import Color, MediaInfo, StreamInfo, VideoInfo, probe
from mmvideo.io.sequence import (
    SequenceInfo,
    SequenceReader,
    parse_pattern,
    probe_sequence,
)
from mmvideo.io.sequence_write import SequenceWriter, SequenceWriterOptions
from mmvideo.io.timecode import (
    Timecode,
    parse_frame_range,
    parse_timecode,
    read_video_timecode,
)
from mmvideo.io.transcode import open_writer as open_video_writer
from mmvideo.io.writer import AtomicWriter

# AVColor* values: BT.709 primaries/matrix, sRGB (IEC 61966-2-1) transfer, limited range.
_SRGB = Color(primaries=1, transfer=13, matrix=1, range=1)
_UNSPECIFIED = Color(primaries=2, transfer=2, matrix=2, range=1)


@dataclass(frozen=True)
class SequenceMediaInfo(MediaInfo):
    """A ``MediaInfo`` for an image sequence; ``sequence`` has the numbering and headers."""

    sequence: SequenceInfo | None = None


def is_sequence_info(info: MediaInfo) -> bool:
    return isinstance(info, SequenceMediaInfo) and info.sequence is not None


def _media_info(seq: SequenceInfo) -> SequenceMediaInfo:
    n = len(seq)
    depth = 8 if seq.pixel_type == "uint8" else (seq.bits if seq.kind == "dpx" else 16)
    video = VideoInfo(
        index=0,
        codec=seq.kind,
        profile=None,
        width=seq.width,
        height=seq.height,
        stored_width=seq.width,
        stored_height=seq.height,
        pix_fmt="rgb24" if depth == 8 else "rgb48le",
        bit_depth=depth,
        fps=seq.rate,
        vfr=False,
        frames=n,
        header_frames=n,
        duration=float(n / seq.rate),
        time_base=Fraction(1) / seq.rate,
        rotation=0.0,
        transform="none",
        # EXR is converted to display space with the sRGB curve; other kinds are as stored.
        color=_SRGB if seq.scene_linear else _UNSPECIFIED,
        interlaced=False,
        bit_rate=0,
        frame_pts=tuple(range(n)),
    )
    return SequenceMediaInfo(
        path=str(seq.pattern),
        container=f"image sequence ({seq.kind})",
        duration=video.duration,
        bit_rate=0,
        metadata={},
        video=video,
        streams=(StreamInfo(0, "video", seq.kind, video.time_base, None),),
        sequence=seq,
    )


def probe_media(
    path: str | os.PathLike, *, fill_missing: bool = False, fps: Fraction | None = None
) -> MediaInfo:
    """``probe`` for a video file, or the sequence description for a frame pattern."""
    if parse_pattern(path) is not None:
        return _media_info(probe_sequence(str(path), fps=fps, fill_missing=fill_missing))
    return probe(path)


def open_reader(
    path: str | os.PathLike,
    info: MediaInfo,
    *,
    start: int | None = None,
    stop: int | None = None,
    threads: int = 0,
    skip_bad_frames: bool = False,
):
    """A frame reader for ``path``: ``VideoReader`` or ``SequenceReader`` (same iteration)."""
    if is_sequence_info(info):
        return SequenceReader(info.sequence.pattern, start=start, stop=stop, info=info.sequence)
    return VideoReader(
        path,
        threads=threads,
        skip_bad_frames=skip_bad_frames,
        start=start,
        stop=stop,
        info=info,
    )


def frame_range(text: str, info: MediaInfo) -> tuple[int, int]:
    """``--frames A-B`` (inclusive) as ``(start, stop)`` positions.

    A and B are frame numbers for a sequence (``1001-1050``) and frame indices for a video.
    """
    frames = parse_frame_range(text)
    if is_sequence_info(info):
        return info.sequence.positions(frames)
    n = info.video.frames
    if frames.last >= n:
        raise InvalidInput(f"{info.path}: --frames {text} goes past the last frame ({n - 1})")
    return frames.first, frames.last + 1


def source_timecode(info: MediaInfo, *, override: str | None = None) -> Timecode | None:
    """Timecode of the input's first frame: ``override`` (``--timecode``), else the headers."""
    rate = info.video.fps or Fraction(25)
    if override:
        return parse_timecode(override, rate, source="--timecode")
    if is_sequence_info(info):
        return info.sequence.timecode
    label = read_video_timecode(info.path)
    return parse_timecode(label, rate, source=info.path) if label else None


def open_writer(
    out_path: str | os.PathLike,
    info: MediaInfo,
    options: EncodeOptions,
    *,
    copy_streams: bool = True,
    start: int = 0,
    stop: int | None = None,
    timecode: Timecode | None = None,
    metadata: Mapping[str, str] | None = None,
    sequence_options: Mapping[str, Any] | None = None,
) -> AtomicWriter:
    """A plain writer for ``out_path``: ``SequenceWriter`` for a frame pattern, else the video
    writer of ``mmvideo.io.transcode``. ``mmvideo.post.writer`` wraps it with the hand-offs.

    ``start`` is the position of the first frame to be written: the output's ``timecode`` (that
    of the input's first frame) is advanced by ``start``, so a range or a farm chunk carries the
    timecode of its own first frame. Frames keep their positions, so a sequence written from
    frames ``start..`` gets the input's frame numbers back. The audio, subtitles and data copied
    into a video file are those of frames ``[start, stop)`` (``stop=None``: to the end).
    ``metadata`` is added to a video's container tags; ``sequence_options`` are extra
    ``SequenceWriterOptions`` fields.
    """
    if parse_pattern(out_path) is not None:
        seq = info.sequence if is_sequence_info(info) else None
        opts = SequenceWriterOptions(
            fps=info.video.fps or None, timecode=timecode, **(sequence_options or {})
        )
        return SequenceWriter(str(out_path), source=seq, options=opts)
    tags = {**info.metadata, **(metadata or {})}
    if timecode is not None:
        tags["timecode"] = str(timecode + start)
    if is_sequence_info(info):
        copy_streams = False  # a sequence has no audio or subtitles to carry over
    return open_video_writer(
        Path(out_path),
        replace(info, metadata=tags),
        options,
        copy_streams=copy_streams,
        copy_range=(start, info.video.frames if stop is None else stop),
    )
