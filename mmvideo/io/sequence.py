"""Image sequences (``plate.%04d.exr``, ``plate.####.dpx``, PNG, TIFF) in and out, through OpenImageIO.

Frame numbers are the numbers in the file names: a sequence may start anywhere (``1001``), and a
gap is an error listing the missing numbers unless ``fill_missing`` repeats the previous frame.
Every header is read before the first frame is decoded, so mixed resolutions, missing RGB
channels and unreadable files are reported up front, not half-way through a render.

Pixels at the boundary are what the rest of mmvideo expects (``Frame.image`` RGB uint8/uint16):
8-bit files give uint8; 10/12/16-bit DPX, PNG and TIFF give uint16 at full 16-bit scale (OIIO
bit-replicates 10-bit codes, and writing them back at 10 bits returns the same codes); half and
32-bit float EXR are scene-linear and go to display space through :func:`linear_to_display`
(IEC 61966-2-1 sRGB encoding of the linear values clipped to [0, 1], quantised to 16 bits).

Untouched pixels come back bit-identical: when an EXR output replaces an EXR input, the writer
re-reads the source frame and keeps its original float values (and every non-RGB channel) wherever
the processed display image equals the display image the reader produced; only changed pixels go
back through :func:`display_to_linear`. That also keeps values above 1.0 and negatives that the
display conversion clips.

Writing is in ``mmvideo.io.sequence_write``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Self

import numpy as np

from mmcore.errors import InvalidInput, MissingInput
from mmvideo.io.frame import Frame
from mmvideo.io.timecode import FrameRange, Timecode, from_smpte_words, parse_timecode

log = logging.getLogger(__name__)

SEQUENCE_KINDS = {
    ".exr": "exr",
    ".dpx": "dpx",
    ".png": "png",
    ".tif": "tiff",
    ".tiff": "tiff",
}
PROVENANCE_ATTRIBUTE = "mmvideo:provenance"
# PNG keeps the timecode as a text chunk; TIFF (which drops unknown tags) as a "timecode" key of
# the JSON in its ImageDescription; EXR and DPX in their SMPTE header field.
TIMECODE_ATTRIBUTE = "mmvideo:timecode"
FPS_ATTRIBUTE = "mmvideo:fps"  # likewise for the frame rate ("25/1")
# DPX and TIFF drop attributes they have no field for; their free-text field carries the tag.
TEXT_FIELD = {
    "exr": PROVENANCE_ATTRIBUTE,
    "png": PROVENANCE_ATTRIBUTE,
    "dpx": "dpx:UserData",
    "tiff": "ImageDescription",
}
_DEFAULT_FPS = Fraction(24)
_PRINTF = re.compile(r"%0?(\d*)d")
_HASHES = re.compile(r"#+|@+")


class SequenceError(InvalidInput):
    """An image sequence cannot be read as one clip (gaps, mixed sizes, bad channels)."""


# --------------------------------------------------------------------------- naming


@dataclass(frozen=True)
class SequencePattern:
    """``prefix`` + frame number zero-padded to ``padding`` + ``suffix`` (``padding`` 0: unpadded)."""

    prefix: str
    padding: int
    suffix: str

    @property
    def kind(self) -> str:
        return SEQUENCE_KINDS["." + self.suffix.rsplit(".", 1)[-1].lower()]

    def path(self, frame: int) -> Path:
        return Path(f"{self.prefix}{frame:0{self.padding}d}{self.suffix}")

    def __str__(self) -> str:
        return (
            f"{self.prefix}%0{self.padding}d{self.suffix}"
            if self.padding
            else f"{self.prefix}%d{self.suffix}"
        )

    def scan(self) -> list[int]:
        """Frame numbers present on disk, sorted."""
        folder = Path(self.prefix).parent
        stem = Path(self.prefix).name
        if not folder.is_dir():
            return []
        digits = rf"(\d{{{self.padding},}})" if self.padding else r"(\d+)"
        name_re = re.compile(re.escape(stem) + digits + re.escape(self.suffix) + "$")
        frames = []
        for entry in os.listdir(folder):
            match = name_re.match(entry)
            # %04d matches 0012 and 12345 but not 12: the same frame must have one name.
            if match and (
                not self.padding
                or len(match.group(1)) == self.padding
                or not match.group(1).startswith("0")
            ):
                frames.append(int(match.group(1)))
        return sorted(frames)


def parse_pattern(text: str | os.PathLike) -> SequencePattern | None:
    """The pattern in ``plate.%04d.exr`` / ``plate.####.dpx`` / ``plate.@@@@.png``, else None.

    Only names whose extension is an image-sequence kind count, so ``clip%03d.mp4`` stays a video.
    """
    text = str(text)
    name = Path(text).name
    if Path(name).suffix.lower() not in SEQUENCE_KINDS:
        return None
    for regex, width in (
        (_PRINTF, lambda m: int(m.group(1) or 0)),
        (_HASHES, lambda m: len(m.group(0))),
    ):
        matches = list(regex.finditer(name))
        if matches:
            last = matches[-1]
            start = len(text) - len(name) + last.start()
            end = len(text) - len(name) + last.end()
            padding = width(last)
            # A single '#' means "any padding" in some tools; we read it as 4, Nuke's default.
            if regex is _HASHES and padding == 1:
                padding = 4
            return SequencePattern(text[:start], padding, text[end:])
    return None


def is_sequence(path: str | os.PathLike) -> bool:
    return parse_pattern(path) is not None


def format_frames(frames: list[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"``."""
    runs: list[list[int]] = []
    for f in frames:
        if runs and f == runs[-1][1] + 1:
            runs[-1][1] = f
        else:
            runs.append([f, f])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


# --------------------------------------------------------------------------- transfer


def linear_to_display(linear: np.ndarray) -> np.ndarray:
    """Scene-linear RGB (float) -> display-space sRGB uint16 (clipped to [0, 1])."""
    # NaN and infinities (they occur in renders) map to black and white; untouched pixels keep
    # their original values anyway.
    with np.errstate(invalid="ignore"):  # signalling NaNs warn when widened
        x = np.asarray(linear, dtype=np.float64)
    x = np.clip(np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    encoded = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.round(encoded * 65535.0).astype(np.uint16)


def display_to_linear(display: np.ndarray) -> np.ndarray:
    """Display-space sRGB uint16 -> scene-linear float32 (the inverse of linear_to_display)."""
    v = np.asarray(display, dtype=np.float64) / 65535.0
    linear = np.where(v <= 0.04045, v / 12.92, np.power((v + 0.055) / 1.055, 2.4))
    return linear.astype(np.float32)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class SequenceInfo:
    """What a sequence is, from its headers: numbering, size, channels, rate, timecode, tags."""

    pattern: SequencePattern
    frames: tuple[int, ...]  # frame numbers on disk
    missing: tuple[int, ...]  # gaps between the first and last
    width: int
    height: int
    channels: tuple[str, ...]
    rgb: tuple[int, int, int]  # indices of R, G, B in ``channels``
    pixel_type: str  # OIIO type name of the file: uint8, uint16, half, float
    bits: int  # bits per sample as stored (10 for 10-bit DPX)
    rate: Fraction
    timecode: Timecode | None  # of the first frame
    provenance: str | None  # the provenance tag text of the first frame, if any

    @property
    def kind(self) -> str:
        return self.pattern.kind

    @property
    def first(self) -> int:
        return self.frames[0]

    @property
    def last(self) -> int:
        return self.frames[-1]

    @property
    def scene_linear(self) -> bool:
        return self.pixel_type in ("half", "float")

    def __len__(self) -> int:
        return self.last - self.first + 1

    def timecode_at(self, frame: int) -> Timecode | None:
        """Timecode of frame number ``frame``."""
        return None if self.timecode is None else self.timecode + (frame - self.first)

    def positions(self, frames: FrameRange) -> tuple[int, int]:
        """``(start, stop)`` positions of a range of frame numbers (``--frames 1001-1050``)."""
        if frames.first < self.first or frames.last > self.last:
            raise InvalidInput(
                f"{self.pattern}: frames {frames.first}-{frames.last} are outside the "
                f"sequence ({self.first}-{self.last})"
            )
        return frames.first - self.first, frames.last - self.first + 1


def oiio_module(users: str = "image sequences"):
    """OpenImageIO, or a one-line error saying that ``users`` need it (commands call this
    before loading models, so a missing extra costs no work)."""
    try:
        import OpenImageIO as oiio  # deferred: the wheel is in the ``post`` extra
    except ImportError:
        raise InvalidInput(f"{users} need OpenImageIO: pip install 'mmvideo[post]'") from None
    return oiio


def first_line(message: str, default: str = "unreadable") -> str:
    """OIIO errors can span lines; our messages are one line."""
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    return lines[0] if lines else default


def open_spec(path: Path):
    oiio = oiio_module()
    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        raise SequenceError(f"{path}: cannot read image header: {first_line(oiio.geterror())}")
    spec = inp.spec()
    inp.close()
    return spec


def _rgb_indices(path: Path, kind: str, names: tuple[str, ...]) -> tuple[int, int, int]:
    if kind == "exr":
        upper = [n.upper() for n in names]
        try:
            return upper.index("R"), upper.index("G"), upper.index("B")
        except ValueError:
            raise SequenceError(
                f"{path}: EXR has channels {','.join(names)}, no R, G and B to read"
            ) from None
    if len(names) < 3:
        raise SequenceError(f"{path}: has {len(names)} channel(s), need RGB")
    return 0, 1, 2


def _tiff_json(spec) -> dict:
    try:
        doc = json.loads(spec.getattribute("ImageDescription") or "")
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _header_fps(spec, kind: str) -> Fraction | None:
    fps = spec.getattribute("FramesPerSecond")
    if isinstance(fps, tuple) and len(fps) == 2 and fps[1]:
        return Fraction(int(fps[0]), int(fps[1]))
    text = spec.getattribute(FPS_ATTRIBUTE)
    if not text and kind == "tiff":
        text = _tiff_json(spec).get("fps")
    if text:
        try:
            return Fraction(text)
        except (ValueError, ZeroDivisionError):
            return None
    dpx = spec.getattribute("dpx:FrameRate")
    if isinstance(dpx, float) and dpx > 0:
        # DPX stores a float: map 23.976 etc. back to the NTSC rational it stands for.
        for cand in (
            Fraction(24000, 1001),
            Fraction(30000, 1001),
            Fraction(60000, 1001),
        ):
            if abs(float(cand) - dpx) < 1e-3:
                return cand
        return Fraction(dpx).limit_denominator(1001)
    return None


def _header_provenance(spec, kind: str) -> str | None:
    value = spec.getattribute(TEXT_FIELD[kind])
    if isinstance(value, np.ndarray):  # DPX user data comes back as bytes
        value = value.tobytes().decode("utf-8", "replace")
    return value or None


def _header_timecode(spec, kind: str, rate: Fraction, source: str) -> Timecode | None:
    words = spec.getattribute("smpte:TimeCode")
    if words:
        return from_smpte_words(words, rate, source=source)
    label = spec.getattribute(TIMECODE_ATTRIBUTE)
    if not label and kind == "tiff":
        label = _tiff_json(spec).get("timecode")
    return parse_timecode(label, rate, source=source) if label else None


def read_image_provenance(path: str | os.PathLike) -> str | None:
    """The provenance tag text in one image file's header, if any."""
    p = Path(path)
    return _header_provenance(open_spec(p), SEQUENCE_KINDS[p.suffix.lower()])


def read_display_image(path: str | os.PathLike) -> np.ndarray:
    """One image file as the RGB array a Frame would carry (same conversions as the reader)."""
    p = Path(path)
    if not p.is_file():
        raise MissingInput(f"{p}: no such file")
    kind = SEQUENCE_KINDS.get(p.suffix.lower())
    if kind is None:
        raise InvalidInput(f"{p}: not an image kind mmvideo reads (exr, dpx, png, tif)")
    spec = open_spec(p)
    names = tuple(spec.channelnames)
    pixel_type = str(spec.format)
    info = SequenceInfo(
        SequencePattern(str(p), 0, ""),
        (0,),
        (),
        spec.width,
        spec.height,
        names,
        _rgb_indices(p, kind, names),
        pixel_type,
        0,
        _DEFAULT_FPS,
        None,
        None,
    )
    return to_display(read_pixels(p, info), info)


def probe_sequence(
    pattern: str | SequencePattern,
    *,
    fps: Fraction | float | None = None,
    fill_missing: bool = False,
) -> SequenceInfo:
    """Read every header of a sequence and check that they form one clip.

    ``fps`` overrides the rate in the headers (which defaults to 24 when no header has one).
    """
    pat = parse_pattern(pattern) if isinstance(pattern, str) else pattern
    if pat is None:
        raise InvalidInput(
            f"{pattern}: not an image-sequence pattern (use name.%04d.exr or name.####.exr)"
        )
    frames = pat.scan()
    if not frames:
        raise MissingInput(f"{pat}: no frames match this pattern")
    missing = sorted(set(range(frames[0], frames[-1] + 1)) - set(frames))
    if missing and not fill_missing:
        raise SequenceError(
            f"{pat}: missing frames {format_frames(missing)} "
            "(use --fill-missing to repeat the previous frame)"
        )
    first_path = pat.path(frames[0])
    spec = open_spec(first_path)
    names = tuple(spec.channelnames)
    rgb = _rgb_indices(first_path, pat.kind, names)
    for frame in frames[1:]:
        other = open_spec(pat.path(frame))
        if (other.width, other.height) != (spec.width, spec.height):
            raise SequenceError(
                f"{pat.path(frame)}: {other.width}x{other.height} differs from "
                f"{first_path.name}'s {spec.width}x{spec.height} (mixed resolutions)"
            )
        if tuple(other.channelnames) != names:
            raise SequenceError(
                f"{pat.path(frame)}: channels {','.join(other.channelnames)} "
                f"differ from {first_path.name}'s {','.join(names)}"
            )
    rate = Fraction(fps) if fps else (_header_fps(spec, pat.kind) or _DEFAULT_FPS)
    timecode = _header_timecode(spec, pat.kind, rate, str(first_path))
    bits = spec.get_int_attribute("oiio:BitsPerSample", 0) or spec.format.size() * 8
    return SequenceInfo(
        pat,
        tuple(frames),
        tuple(missing),
        spec.width,
        spec.height,
        names,
        rgb,
        str(spec.format),
        bits,
        rate,
        timecode,
        _header_provenance(spec, pat.kind),
    )


def read_pixels(path: Path, info: SequenceInfo) -> np.ndarray:
    """All channels of one file: float32 for EXR (exact for half), else the stored int type."""
    oiio = oiio_module()
    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        raise SequenceError(f"{path}: cannot read: {first_line(oiio.geterror())}")
    fmt = "float" if info.scene_linear else ("uint8" if info.pixel_type == "uint8" else "uint16")
    pixels = inp.read_image(0, 0, 0, len(info.channels), fmt)
    error = inp.geterror()
    inp.close()
    if pixels is None or error:
        raise SequenceError(f"{path}: cannot decode pixels: {first_line(error)}")
    return pixels.reshape(info.height, info.width, len(info.channels))


@functools.cache
def _half_table() -> np.ndarray:
    """linear_to_display of every half-float bit pattern: a half EXR converts by lookup."""
    return linear_to_display(np.arange(65536, dtype=np.uint16).view(np.float16))


def to_display(pixels: np.ndarray, info: SequenceInfo) -> np.ndarray:
    """The RGB image a Frame carries, from all channels of a file."""
    rgb = pixels if info.rgb == (0, 1, 2) and pixels.shape[-1] == 3 else pixels[..., list(info.rgb)]
    if info.pixel_type == "half":  # read as float32, exactly the half values: look them up
        return _half_table()[rgb.astype(np.float16).view(np.uint16)]
    return linear_to_display(rgb) if info.scene_linear else rgb


class SequenceReader:
    """Iterates a sequence as ``Frame`` records, like ``VideoReader``.

    ``Frame.index`` and ``pts`` are positions from the sequence's first frame (0, 1, 2 ...), as
    for a video, so the pipeline's frame ranges, plans and chunks work unchanged; the file's frame
    number is ``info.first + index``, and the writer turns positions back into numbers.
    ``time_base`` is 1/rate. ``start``/``stop`` are positions (``info.positions`` converts a
    range of frame numbers). ``filled`` lists the frame numbers that repeated the previous frame
    because ``fill_missing`` was set.
    """

    def __init__(
        self,
        pattern: str | SequencePattern,
        *,
        fps: Fraction | float | None = None,
        fill_missing: bool = False,
        start: int | None = None,
        stop: int | None = None,
        info: SequenceInfo | None = None,
    ):
        self.info = info or probe_sequence(pattern, fps=fps, fill_missing=fill_missing)
        n = len(self.info)
        self.start = 0 if start is None else start
        self.stop = n if stop is None else min(stop, n)
        if not 0 <= self.start <= self.stop:
            raise InvalidInput(
                f"{self.info.pattern}: bad frame range {start}..{stop} (sequence has {n} frames)"
            )
        self.filled: list[int] = []

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self) -> Iterator[Frame]:
        info = self.info
        present = set(info.frames)
        time_base = Fraction(1) / info.rate
        image: np.ndarray | None = None
        first = info.first + self.start
        if first not in present:  # a range that starts in a gap fills from the frame before
            before = max(f for f in info.frames if f < first)
            image = to_display(read_pixels(info.pattern.path(before), info), info)
        for position in range(self.start, self.stop):
            number = info.first + position
            if number in present:
                image = to_display(read_pixels(info.pattern.path(number), info), info)
                out = image
            else:
                self.filled.append(number)
                out = image.copy()  # a repeated frame must not share the buffer it repeats
            yield Frame(position, position, time_base, out, key_frame=True)
        if self.filled:
            log.warning(
                "%s: filled missing frames %s with the previous frame",
                info.pattern,
                format_frames(self.filled),
            )

    def close(self) -> None:
        """Nothing is held open between frames; here for parity with ``VideoReader``."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
