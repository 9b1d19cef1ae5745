"""Probe a media file: container, streams, timing, orientation and color, as typed records.

Also the input checks every reader shares, so a missing, empty, truncated or non-video file gets
the same one-line error wherever it is opened.
"""

from __future__ import annotations

import itertools
import logging
import statistics
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from mmcore.errors import InvalidInput, MissingInput
from mmvideo.io.orientation import (
    display_rotation,
    parse_display_matrix,
    swaps_axes,
    upright_transform,
)

log = logging.getLogger(__name__)

# AVColor* enum values -> the names ffmpeg prints (the common ones; others are shown as numbers)
PRIMARIES = {
    1: "bt709",
    2: "unknown",
    4: "bt470m",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "film",
    9: "bt2020",
    10: "smpte428",
    11: "smpte431",
    12: "smpte432",
}
TRANSFERS = {
    1: "bt709",
    2: "unknown",
    4: "gamma22",
    5: "gamma28",
    6: "smpte170m",
    7: "smpte240m",
    8: "linear",
    13: "iec61966-2-1",
    14: "bt2020-10",
    15: "bt2020-12",
    16: "smpte2084",
    18: "arib-std-b67",
}
MATRICES = {
    0: "gbr",
    1: "bt709",
    2: "unknown",
    4: "fcc",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "ycgco",
    9: "bt2020nc",
    10: "bt2020c",
}
RANGES = {0: "unknown", 1: "tv", 2: "pc"}


@dataclass(frozen=True)
class Color:
    """Color description of a video stream (AVColor* enum values; ``names()`` for display)."""

    primaries: int = 2
    transfer: int = 2
    matrix: int = 2
    range: int = 0

    def names(self) -> dict[str, str]:
        return {
            "primaries": PRIMARIES.get(self.primaries, str(self.primaries)),
            "transfer": TRANSFERS.get(self.transfer, str(self.transfer)),
            "matrix": MATRICES.get(self.matrix, str(self.matrix)),
            "range": RANGES.get(self.range, str(self.range)),
        }


@dataclass(frozen=True)
class VideoInfo:
    """The first video stream. ``width``/``height`` are upright (after rotation)."""

    index: int
    codec: str
    profile: str | None
    width: int
    height: int
    stored_width: int
    stored_height: int
    pix_fmt: str
    bit_depth: int
    fps: Fraction
    vfr: bool
    frames: int
    header_frames: int
    duration: float
    time_base: Fraction
    rotation: float
    transform: str
    color: Color
    interlaced: bool
    bit_rate: int
    frame_pts: tuple[int, ...] = field(repr=False)
    # "progressive", or which field comes first in time: "tff" (top) or "bff" (bottom)
    field_order: str = "progressive"


@dataclass(frozen=True)
class StreamInfo:
    """Any stream (video, audio, subtitle, data, attachment)."""

    index: int
    type: str
    codec: str
    time_base: Fraction | None
    language: str | None
    sample_rate: int | None = None
    channels: int | None = None
    layout: str | None = None
    sample_fmt: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MediaInfo:
    path: str
    container: str
    duration: float
    bit_rate: int
    metadata: dict[str, str]
    video: VideoInfo
    streams: tuple[StreamInfo, ...]

    @property
    def audio(self) -> tuple[StreamInfo, ...]:
        return tuple(s for s in self.streams if s.type == "audio")

    def to_dict(self) -> dict:
        """A JSON-ready dict (fractions as strings, the per-frame pts list left out)."""
        data = asdict(self)
        data["video"].pop("frame_pts")
        data["video"]["color"] = self.video.color.names()
        return _stringify_fractions(data)


def _stringify_fractions(value):
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    if isinstance(value, dict):
        return {k: _stringify_fractions(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_stringify_fractions(v) for v in value]
    return value


def check_input_path(path: str | Path) -> Path:
    """Fail with a one-line error unless ``path`` is an existing, non-empty regular file."""
    p = Path(path)
    if not p.exists():
        raise MissingInput(f"{p}: no such file")
    if p.is_dir():
        raise MissingInput(f"{p}: is a directory, not a video file")
    if not p.is_file():
        raise MissingInput(f"{p}: not a regular file")
    if p.stat().st_size == 0:
        raise InvalidInput(f"{p}: empty file (0 bytes)")
    return p


def open_input(path: str | Path) -> av.container.InputContainer:
    """Open a media file for reading, turning library errors into one-line InvalidInput."""
    p = check_input_path(path)
    try:
        return av.open(str(p), metadata_errors="replace")
    except av.error.FFmpegError as exc:
        raise InvalidInput(f"{p}: not a readable media file ({error_reason(exc)})") from exc


def video_stream(
    container: av.container.InputContainer, path: str | Path
) -> av.video.stream.VideoStream:
    """The first real video stream (cover-art pictures do not count)."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    kinds = ", ".join(s.type for s in container.streams) or "no streams"
    raise InvalidInput(f"{path}: no video stream ({kinds})")


def error_reason(exc: BaseException) -> str:
    """The library's reason for an error, as one short line (no path, no errno prefix)."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(";")[0].strip()


def _first_frame(container, stream, path) -> av.VideoFrame:
    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as exc:
        raise InvalidInput(
            f"{path}: cannot decode {stream.codec_context.name} video ({error_reason(exc)})"
        ) from exc
    raise InvalidInput(f"{path}: video stream has no decodable frame")


def _packet_index(container, stream, path) -> tuple[list[int], int]:
    """Presentation order pts of the frames a decoder will output, and the packet count."""
    pts: list[int] = []
    packets = 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            packets += 1
            if not packet.is_discard and packet.pts is not None:
                pts.append(packet.pts)
    except av.error.FFmpegError as exc:
        raise InvalidInput(
            f"{path}: unreadable after {packets} video packets ({error_reason(exc)})"
        ) from exc
    return sorted(pts), packets


def _is_vfr(pts: list[int]) -> bool:
    deltas = [b - a for a, b in itertools.pairwise(pts)]
    if len(deltas) < 2:
        return False
    median = statistics.median(deltas)
    # a rounded time base (1/1000 for 30000/1001) alternates 33/34: one tick is still constant
    tolerance = max(1.0, 0.01 * median)
    return any(abs(d - median) > tolerance for d in deltas)


def _stream_info(stream) -> StreamInfo:
    cc = stream.codec_context
    name = cc.name if cc is not None else (stream.name or "none")  # data streams: bin_data, klv...
    lang = stream.metadata.get("language")
    info = {
        "index": stream.index,
        "type": stream.type,
        "codec": name,
        "time_base": stream.time_base,
        "language": lang,
        "metadata": dict(stream.metadata),
    }
    if stream.type == "audio":
        info.update(
            sample_rate=cc.sample_rate,
            channels=cc.channels,
            layout=cc.layout.name,
            sample_fmt=cc.format.name if cc.format else None,
        )
    return StreamInfo(**info)


def _field_order(stream, frame: av.VideoFrame) -> str:
    """The first frame's field order, as its decoder flagged it. The stream's own field_order is
    no answer: in MP4 the H.264 parser calls every interlaced stream top-first. PyAV exposes
    the interlaced flag but not top-field-first, so a ``select`` filter on it answers."""
    if not frame.interlaced_frame:
        return "progressive"
    graph = av.filter.Graph()
    chain = [
        graph.add_buffer(template=stream),
        graph.add("select", r"eq(interlace_type\,TOPFIRST)"),
        graph.add("buffersink"),
    ]
    for a, b in itertools.pairwise(chain):
        a.link_to(b)
    graph.configure()
    graph.push(frame)
    graph.push(None)
    try:
        graph.pull()
    except (av.error.EOFError, BlockingIOError):
        return "bff"
    return "tff"


def probe(path: str | Path) -> MediaInfo:
    """Describe a media file. Demuxes the video stream once (no decode but one frame) to count frames."""
    container = open_input(path)
    with container:
        stream = video_stream(container, path)
        cc = stream.codec_context
        if cc is None:
            raise InvalidInput(f"{path}: unsupported video codec (no decoder in this ffmpeg build)")
        first = _first_frame(container, stream, path)
        matrix = None
        for side in first.side_data:
            if side.type == av.sidedata.sidedata.Type.DISPLAYMATRIX:
                matrix = parse_display_matrix(bytes(side))
        transform = upright_transform(matrix)
        field_order = _field_order(stream, first)
        container.seek(0, stream=stream, backward=True, any_frame=False)
        pts, packets = _packet_index(container, stream, path)
        header_frames = stream.frames or 0
        if header_frames and packets < header_frames:
            raise InvalidInput(
                f"{path}: truncated file ({packets} of {header_frames} video packets present)"
            )
        if not pts:
            raise InvalidInput(f"{path}: video stream has no frames")
        tb = stream.time_base
        vfr = _is_vfr(pts)
        span = (pts[-1] - pts[0]) * tb
        if stream.average_rate and not vfr:
            fps = Fraction(stream.average_rate)
        elif span > 0:
            fps = Fraction(len(pts) - 1) / span
        else:
            fps = Fraction(stream.guessed_rate or 0)
        fmt = av.VideoFormat(first.format.name)
        width, height = first.width, first.height
        upright = (height, width) if swaps_axes(transform) else (width, height)
        duration = (
            float(stream.duration * tb) if stream.duration else float(len(pts) / fps if fps else 0)
        )
        video = VideoInfo(
            index=stream.index,
            codec=cc.name,
            profile=cc.profile,
            width=upright[0],
            height=upright[1],
            stored_width=width,
            stored_height=height,
            pix_fmt=first.format.name,
            bit_depth=max(c.bits for c in fmt.components),
            fps=Fraction(fps).limit_denominator(1_000_000),
            vfr=vfr,
            frames=len(pts),
            header_frames=header_frames,
            duration=duration,
            time_base=tb,
            rotation=round(display_rotation(matrix), 2) if matrix else 0.0,
            transform=transform,
            color=Color(
                primaries=int(first.color_primaries),
                transfer=int(first.color_trc),
                matrix=int(first.colorspace),
                range=int(first.color_range),
            ),
            interlaced=bool(first.interlaced_frame),
            bit_rate=cc.bit_rate or 0,
            frame_pts=tuple(pts),
            field_order=field_order,
        )
        return MediaInfo(
            path=str(path),
            container=container.format.name,
            duration=(container.duration or 0) / av.time_base,
            bit_rate=container.bit_rate or 0,
            metadata=dict(container.metadata),
            video=video,
            streams=tuple(_stream_info(s) for s in container.streams),
        )
