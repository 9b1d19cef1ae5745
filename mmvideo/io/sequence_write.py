"""Writing image sequences (the reading side and the conventions are in ``mmvideo.io.sequence``).

A written sequence is all-or-nothing: frames go to a hidden folder beside the output and are
renamed into place by ``close()``; on error that folder is removed. When an EXR output replaces an
EXR input, untouched pixels and extra channels are copied from the source file bit for bit.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from mmcore.atomic import write_errors
from mmcore.errors import OutputError
from mmvideo.io.frame import Frame
from mmvideo.io.sequence import (
    FPS_ATTRIBUTE,
    TEXT_FIELD,
    TIMECODE_ATTRIBUTE,
    SequenceInfo,
    SequencePattern,
    display_to_linear,
    first_line,
    oiio_module,
    open_spec,
    parse_pattern,
    read_pixels,
    to_display,
)
from mmvideo.io.timecode import Timecode
from mmvideo.io.writer import AtomicWriter

log = logging.getLogger(__name__)

# The swap's blend matte in an EXR output: a layer's alpha, not the image's, since the RGB is the
# whole comp and not premultiplied by it (Nuke shows it as matte.alpha).
MATTE_CHANNEL = "matte.A"


@dataclass
class SequenceWriterOptions:
    """How to write: pixel type (None: from the source or the frames), timecode and tags."""

    pixel_type: str | None = None  # exr: half|float; dpx: 10|12|16 bits as "uint10" etc.
    fps: Fraction | None = None
    timecode: Timecode | None = None  # timecode of position 0 (frame ``start_number``)
    start_number: int | None = None  # file number of position 0 (default: source's first, or 0)
    provenance: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)


def _tiff_description(
    provenance: str | None, tc: Timecode | None, rate: Fraction | None
) -> str | None:
    """TIFF's one free-text field carries the provenance JSON, timecode and rate added to it."""
    if tc is None and rate is None:
        return provenance
    try:
        doc = json.loads(provenance) if provenance else {}
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        log.warning("TIFF output: provenance text is not JSON; timecode and rate not written")
        return provenance
    if tc is not None:
        doc["timecode"] = str(tc)
    if rate is not None:
        doc["fps"] = f"{rate.numerator}/{rate.denominator}"
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def _dpx_bits(pixel_type: str | None, source: SequenceInfo | None) -> int:
    if pixel_type and pixel_type.startswith("uint") and pixel_type[4:] in ("10", "12", "16"):
        return int(pixel_type[4:])
    return source.bits if source is not None and source.kind == "dpx" else 10


class SequenceWriter(AtomicWriter):
    """Writes ``Frame``s to ``pattern``, atomically as a whole.

    The file number of a frame is ``start_number + frame.index`` (``frame.index`` being its
    position, as ``SequenceReader`` and ``VideoReader`` number frames), so a sequence keeps its
    numbering, and a video written as frames starts at ``start_number`` (0 by default).

    ``source`` is the sequence the frames came from; when it is an EXR and so is the output,
    untouched pixels and extra channels are copied from it bit for bit (see the module notes).
    """

    def __init__(
        self,
        pattern: str | SequencePattern,
        *,
        source: SequenceInfo | None = None,
        options: SequenceWriterOptions | None = None,
    ):
        pat = parse_pattern(pattern) if isinstance(pattern, str) else pattern
        if pat is None:
            raise OutputError(f"{pattern}: not an image-sequence pattern")
        if source is not None and str(source.pattern) == str(pat):
            raise OutputError(f"{pat}: output pattern is the input sequence")
        self.pattern = pat
        self.source = source
        self.options = options or SequenceWriterOptions()
        folder = Path(pat.prefix).parent
        if not folder.is_dir():
            raise OutputError(f"{folder}: output folder does not exist")
        with write_errors(folder, "write here"):
            self._tmp = Path(
                tempfile.mkdtemp(prefix=f".{Path(pat.prefix).name}mmvideo-", dir=folder)
            )
        self._written: list[int] = []
        self._restore = source is not None and source.scene_linear and pat.kind == "exr"
        if self.options.start_number is not None:
            self._start = self.options.start_number
        else:
            self._start = source.first if source is not None else 0

    # The restore path re-reads the source file rather than caching it, so memory stays one
    # frame no matter how far the pipeline's look-ahead runs.
    def _restored(self, frame: Frame) -> tuple[np.ndarray, object]:
        src = self.source
        assert src is not None
        wanted = src.first + frame.index
        number = wanted if wanted in src.frames else max(f for f in src.frames if f <= wanted)
        path = src.pattern.path(number)
        pixels = read_pixels(path, src)
        if frame.image.dtype != np.uint16:
            raise OutputError(
                f"{self.pattern}: frame {frame.index} is {frame.image.dtype}, "
                "expected uint16 for a scene-linear source"
            )
        changed = np.any(frame.image != to_display(pixels, src), axis=-1)
        out = pixels.copy()
        linear = display_to_linear(frame.image[changed])
        for i, c in enumerate(src.rgb):
            out[changed, c] = linear[:, i]
        return out, open_spec(path)

    def _spec(self, frame: Frame, template=None):
        oiio = oiio_module()
        h, w = frame.image.shape[:2]
        kind, opts = self.pattern.kind, self.options
        if template is not None:
            spec = oiio.ImageSpec(template)
        elif kind == "exr":
            src_type = self.source.pixel_type if self.source and self.source.scene_linear else None
            spec = oiio.ImageSpec(w, h, 3, opts.pixel_type or src_type or "half")
            spec.attribute("compression", "zip")
        elif kind == "dpx":
            spec = oiio.ImageSpec(w, h, 3, "uint16")
            spec.attribute("oiio:BitsPerSample", _dpx_bits(opts.pixel_type, self.source))
        else:
            spec = oiio.ImageSpec(w, h, 3, "uint16" if frame.image.dtype == np.uint16 else "uint8")
        rate = opts.fps or (self.source.rate if self.source else None)
        if rate:
            spec.attribute(
                "FramesPerSecond",
                oiio.TypeDesc("rational"),
                [rate.numerator, rate.denominator],
            )
            if kind == "dpx":
                spec.attribute("dpx:FrameRate", float(rate))
            elif kind == "png":  # PNG has no rate field: a text chunk, as for the timecode
                spec.attribute(FPS_ATTRIBUTE, f"{rate.numerator}/{rate.denominator}")
        tc = None if opts.timecode is None else opts.timecode + frame.index
        if tc is not None:
            if kind in ("exr", "dpx"):
                spec.attribute(
                    "smpte:TimeCode",
                    oiio.TypeDesc("timecode"),
                    list(tc.to_smpte_words()),
                )
            elif kind == "png":
                spec.attribute(TIMECODE_ATTRIBUTE, str(tc))
        if kind == "tiff":
            text = _tiff_description(opts.provenance, tc, rate)
            if text:
                spec.attribute("ImageDescription", text)
        elif opts.provenance:
            if kind == "dpx":
                data = np.frombuffer(opts.provenance.encode(), np.uint8)
                spec.attribute("dpx:UserData", oiio.TypeDesc(f"uint8[{len(data)}]"), data)
            else:
                spec.attribute(TEXT_FIELD[kind], opts.provenance)
        for key, value in opts.attributes.items():
            spec.attribute(key, value)
        return spec

    def write(self, frame: Frame) -> None:
        oiio = oiio_module()
        template = None
        if self._restore:
            pixels, template = self._restored(frame)
        elif self.pattern.kind == "exr" and frame.image.dtype != np.float32:
            scale = 65535 if frame.image.dtype == np.uint16 else 255
            pixels = display_to_linear(frame.image.astype(np.float64) * (65535 / scale))
        elif self.pattern.kind == "dpx" and frame.image.dtype == np.uint8:
            pixels = frame.image.astype(np.uint16) * 257
        else:
            pixels = frame.image
        spec = self._spec(frame, template)
        if self.pattern.kind == "exr" and frame.matte is not None:
            pixels = _with_matte(pixels, spec, frame.matte)
        number = self._start + frame.index
        target = self._tmp / self.pattern.path(number).name
        out = oiio.ImageOutput.create(str(target))
        if out is None or not out.open(str(target), spec):
            raise OutputError(
                f"{self.pattern.path(number)}: cannot write: {first_line(oiio.geterror())}"
            )
        ok = out.write_image(np.ascontiguousarray(pixels))
        error = out.geterror()
        out.close()
        if not ok:
            raise OutputError(f"{self.pattern.path(number)}: cannot write: {first_line(error)}")
        self._written.append(number)

    def close(self) -> list[Path]:
        """Move every written frame into place; returns their final paths."""
        finals = []
        for number in self._written:
            final = self.pattern.path(number)
            os.replace(self._tmp / final.name, final)
            finals.append(final)
        shutil.rmtree(self._tmp, ignore_errors=True)
        return finals

    def abort(self) -> None:
        """Drop everything written so far."""
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._written.clear()


def _with_matte(pixels: np.ndarray, spec, matte: np.ndarray) -> np.ndarray:
    """``pixels`` with ``matte`` as the channel ``MATTE_CHANNEL``, added to ``spec`` (or
    replaced, in a plate an earlier swap wrote)."""
    names = tuple(spec.channelnames)
    if MATTE_CHANNEL in names:
        pixels = pixels.copy()
        pixels[..., names.index(MATTE_CHANNEL)] = matte
        return pixels
    if len(spec.channelformats):
        raise OutputError(f"{MATTE_CHANNEL}: cannot add a channel to a plate of mixed pixel types")
    spec.nchannels += 1
    spec.channelnames = (*names, MATTE_CHANNEL)
    return np.concatenate([pixels, matte[..., None].astype(pixels.dtype)], axis=-1)


def writer_options_like(source: SequenceInfo, **overrides) -> SequenceWriterOptions:
    """Options that carry a source sequence's rate and timecode to its output."""
    opts = SequenceWriterOptions(
        fps=source.rate, timecode=source.timecode, start_number=source.first
    )
    return replace(opts, **overrides)
