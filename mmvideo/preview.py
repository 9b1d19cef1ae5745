"""``mmvideo preview``: a contact sheet to check a shot before spending a render on it.

For a spread of frames in ``--frames A-B`` the sheet shows the original next to the swap and
the blend matte tinted over the original (what ``--matte-out`` writes: where the face goes and
where it fades out, hands cut out), the track ids on each face (selected tracks, the ones that
get swapped, in green and starred) and whether any face was found in that frame. It runs the same analysis, smoothing and generation as
``mmvideo swap`` (with the same warm-up before ``A``), but renders only the frames it shows.

The sheet itself contains synthetic faces, so it carries the provenance tag like any output, and
is written to a temporary file and renamed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mmcore.atomic import atomic_output
from mmcore.errors import OutputError
from mmvideo.io.media import (
    frame_range,
    is_sequence_info,
    open_reader,
    probe_media,
    source_timecode,
)
from mmvideo.io.sequence import PROVENANCE_ATTRIBUTE, oiio_module
from mmvideo.io.timecode import FrameRange

log = logging.getLogger(__name__)

GREEN = (40, 200, 60)
GRAY = (170, 170, 170)
RED = (220, 60, 50)
MATTE_TINT = np.array((255, 40, 200), np.float32)  # magenta: far from any skin tone
MATTE_OPACITY = 0.6  # of the tint where the matte is 1; the original shows through
TEXT_WIDTH = 230
PREVIEW_USERS = "preview sheets (PNG with the provenance tag)"


@dataclass(frozen=True)
class PreviewFace:
    """One face in one shown frame: its track, its box (frame pixels), and whether it is swapped."""

    track: int
    box: tuple[float, float, float, float]
    selected: bool


@dataclass
class PreviewRow:
    """One line of the sheet."""

    label: int  # the frame number the user knows (sequence number or video index)
    timecode: str | None
    original: np.ndarray  # RGB uint8/uint16
    swapped: np.ndarray
    faces: list[PreviewFace] = field(default_factory=list)
    matte: np.ndarray | None = None  # H×W float32 blend matte (a mask column when given)

    @property
    def face_found(self) -> bool:
        return bool(self.faces)


def _to8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _thumb(image: np.ndarray, height: int) -> tuple[np.ndarray, float]:
    scale = height / image.shape[0]
    width = max(1, round(image.shape[1] * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(_to8(image), (width, height), interpolation=interp), scale


def matte_overlay(image: np.ndarray, matte: np.ndarray, height: int) -> np.ndarray:
    """A thumbnail of ``image`` with ``matte`` (0–1, the image's size) tinted over it."""
    thumb, _ = _thumb(image, height)
    m = cv2.resize(matte, thumb.shape[1::-1], interpolation=cv2.INTER_AREA)[..., None]
    tinted = thumb * (1 - MATTE_OPACITY * m) + MATTE_TINT * (MATTE_OPACITY * m)
    return np.clip(np.rint(tinted), 0, 255).astype(np.uint8)


def _text(canvas: np.ndarray, text: str, org: tuple[int, int], color=(235, 235, 235)) -> None:
    cv2.putText(canvas, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)


def contact_sheet(rows: list[PreviewRow], title: str, height: int = 200) -> np.ndarray:
    """Lay out the rows (pure: images in, RGB uint8 sheet out)."""
    thumbs = []
    for row in rows:
        original, scale = _thumb(row.original, height)
        swapped, _ = _thumb(row.swapped, height)
        original = np.ascontiguousarray(original)
        for face in row.faces:
            x0, y0, x1, y1 = (round(v * scale) for v in face.box)
            color = GREEN if face.selected else GRAY
            cv2.rectangle(original, (x0, y0), (x1, y1), color, 2)
            tag = f"#{face.track}{'*' if face.selected else ''}"
            _text(original, tag, (x0 + 2, max(12, y0 - 4)), color)
        panels = [original, swapped]
        if row.matte is not None:
            panels.append(matte_overlay(row.original, row.matte, height))
        thumbs.append(panels)
    names = ["original", "swap", "mask"][: max(len(t) for t in thumbs)]
    panel = max(p.shape[1] for t in thumbs for p in t)
    width = TEXT_WIDTH + len(names) * (panel + 10) + 10
    header = 50
    sheet = np.full((header + len(rows) * (height + 10), width, 3), 24, np.uint8)
    _text(sheet, title, (10, 20))
    _text(sheet, "#id = track, * = swapped", (10, 42), GRAY)
    for k, name in enumerate(names):
        _text(sheet, name, (TEXT_WIDTH + 10 + k * (panel + 10), 42))
    for i, (row, panels) in enumerate(zip(rows, thumbs)):
        y = header + i * (height + 10)
        for k, image in enumerate(panels):
            x = TEXT_WIDTH + 10 + k * (panel + 10)
            sheet[y : y + height, x : x + image.shape[1]] = image
        _text(sheet, f"frame {row.label}", (10, y + 20))
        if row.timecode:
            _text(sheet, f"tc {row.timecode}", (10, y + 42))
        found = "face found" if row.face_found else "NO FACE"
        _text(sheet, found, (10, y + 64), GREEN if row.face_found else RED)
        ids = ", ".join(f"{f.track}{'*' if f.selected else ''}" for f in row.faces)
        _text(sheet, f"tracks: {ids or '-'}", (10, y + 86))
    return sheet


def write_sheet(path: str | os.PathLike, sheet: np.ndarray, provenance: str | None) -> Path:
    """Write the sheet as PNG (with the provenance tag) via a temporary file and a rename."""
    oiio = oiio_module(PREVIEW_USERS)

    out = Path(path)
    if out.suffix.lower() != ".png":
        raise OutputError(f"{out}: the contact sheet is a .png file")
    if not out.parent.is_dir():
        raise OutputError(f"{out}: folder {out.parent} does not exist")
    spec = oiio.ImageSpec(sheet.shape[1], sheet.shape[0], 3, "uint8")
    if provenance:
        spec.attribute(PROVENANCE_ATTRIBUTE, provenance)
    with atomic_output(out, suffix=".png") as tmp:
        writer = oiio.ImageOutput.create(str(tmp))
        ok = writer is not None and writer.open(str(tmp), spec) and writer.write_image(sheet)
        if writer is not None:
            writer.close()
        if not ok:
            raise OutputError(f"{out}: cannot write ({oiio.geterror() or 'unknown error'})")
    return out


def render_rows(
    source: str,
    input_path: str,
    frames: str,
    cfg,
    models,
    *,
    count: int = 6,
    warmup: int = 25,
    fill_missing: bool = False,
    analyzer=None,
    masks=None,
) -> list[PreviewRow]:
    """Analyse ``[A - warmup, B]``, then swap and keep ``count`` frames spread over A-B;
    ``masks``: the mask types' models (``pipeline.mask_models``, None: built here)."""
    from mmvideo import pipeline  # deferred: the pipeline imports torch; --help does not need it

    if masks is None:
        masks = pipeline.mask_models(cfg, models.device)  # a missing model fails before decoding
    info = probe_media(input_path, fill_missing=fill_missing)
    start, stop = frame_range(frames, info)
    first = max(0, start - warmup)
    # the source is a still: searched harder than frames, with the frames' landmarker, as
    # ``run_swap`` does
    analyzer, stills = pipeline.analyzers(cfg, models.device, analyzer)
    e_s = pipeline.source_identity(source, stills, models, cfg.detect.source_face_index)
    analysis = pipeline.analyze(input_path, info, cfg, analyzer, models, first, stop)
    plan, selected, _ = pipeline.plan_faces(analysis, cfg, None, start, stop)
    shown = set(FrameRange(start, stop - 1).spread(count))
    offset = info.sequence.first if is_sequence_info(info) else 0
    timecode = source_timecode(info)
    rows = []
    with open_reader(input_path, info, start=min(shown), stop=max(shown) + 1) as reader:
        for frame in reader:
            if frame.index not in shown:
                continue
            planned = [f for _, f in plan.get(frame.index, [])]
            matte = np.zeros(frame.image.shape[:2], np.float32)
            swapped = pipeline.swap_frame(frame.image, planned, models, e_s, cfg, masks, matte)
            faces = [
                PreviewFace(
                    t.id,
                    tuple(float(v) for v in t.faces[frame.index].box),
                    t.id in selected,
                )
                for t in analysis.tracks
                if frame.index in t.faces
            ]
            tc = str(timecode + frame.index) if timecode is not None else None
            rows.append(PreviewRow(offset + frame.index, tc, frame.image, swapped, faces, matte))
    return rows
