"""Which source goes into which track: ``--source`` with the target selection, and ``--map``.

Between the passes, with the whole analysed range known, every track to swap gets a source
image:

- ``map`` entries ``TRACK=source.jpg`` (a track id as ``mmvideo tracks`` shows it) and
  ``reference.jpg=source.jpg`` (the track whose identity embedding is most like the face in the
  reference photo; several references are matched together, one track each, by the Hungarian
  method on cosine similarity);
- the tracks the usual selection picks (``target``, ``track_id``, ``target_face``) among those
  the map leaves, get ``--source`` when there is one.

A farm plan makes that decision once over the whole clip and hands every chunk *anchors*: each
chosen track's boxes in the frames that chunk analyses. A chunk's own tracks (numbered per run)
take the source of the anchor they overlap in the most frames (``match_anchors``), so every
chunk swaps the faces a single run of the whole clip swaps, with the same sources.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from magicmask.face.types import iou_matrix
from mmcore.errors import InvalidInput, MissingInput
from mmvideo.config import TrackConfig
from mmvideo.track import Track, select_tracks

log = logging.getLogger(__name__)

# A chunk track follows an anchor in a frame where their boxes overlap at least this much; the
# same detector on the same frame gives the same box (IoU 1), landmark-only updates come close.
ANCHOR_MIN_IOU = 0.5


@dataclass(frozen=True)
class MapEntry:
    """One ``--map`` pair: a track id or a reference photo, and the source to swap into it."""

    source: str
    track: int | None = None
    reference: str | None = None

    @property
    def key(self) -> str:
        return str(self.track) if self.track is not None else str(self.reference)


def parse_map(entries: tuple[str, ...] | list[str]) -> list[MapEntry]:
    """``["2=b.jpg", "lead.jpg=a.jpg"]`` → entries; a malformed pair or a track given twice is
    a one-line ``InvalidInput``."""
    out: list[MapEntry] = []
    for text in entries:
        key, sep, source = text.partition("=")
        key, source = key.strip(), source.strip()
        if not sep or not key or not source:
            raise InvalidInput(
                f"--map {text!r}: expected TRACK=source.jpg or reference.jpg=source.jpg"
            )
        if key.isdigit():
            if int(key) < 1:
                raise InvalidInput(f"--map {text!r}: track ids start at 1")
            entry = MapEntry(source, track=int(key))
        else:
            entry = MapEntry(source, reference=key)
        if any(e.key == entry.key for e in out):
            raise InvalidInput(f"--map: {entry.key} is mapped twice")
        out.append(entry)
    return out


def check_map_files(entries: list[MapEntry]) -> None:
    """Every source and reference photo exists: checked before any model loads."""
    for e in entries:
        for path, what in ((e.source, "source"), (e.reference, "reference photo")):
            if path is not None and not Path(path).is_file():
                raise MissingInput(f"{path}: file not found (--map {e.key}={e.source}, {what})")


def map_files(entries: tuple[str, ...] | list[str]) -> list[str]:
    """The files a map reads (sources and reference photos), for the farm's overwrite guards."""
    return [p for e in parse_map(entries) for p in (e.source, e.reference) if p is not None]


def needs_decision(cfg: TrackConfig) -> bool:
    """Whether the tracks to swap depend on the whole clip (so a farm decides them in ``plan``):
    anything but ``--source`` into every face."""
    return bool(cfg.map or cfg.target != "all" or cfg.track_id is not None or cfg.target_face)


def assign_sources(
    tracks: list[Track],
    cfg: TrackConfig,
    source: str | None,
    references: dict[str, np.ndarray],
    target_reference: np.ndarray | None = None,
) -> dict[int, str]:
    """Track id → source image for every track to swap.

    ``references`` holds the identity embedding of each map entry's reference photo (by path);
    ``target_reference`` that of ``target_face``. A mapped track id that no track has is an
    ``InvalidInput`` naming the tracks there are.
    """
    entries = parse_map(cfg.map)
    ids = {t.id for t in tracks}
    out: dict[int, str] = {}
    for e in entries:
        if e.track is None:
            continue
        if e.track not in ids:
            raise InvalidInput(
                f"--map {e.track}={e.source}: no track {e.track} "
                f"(tracks: {', '.join(str(i) for i in sorted(ids)) or 'none'})"
            )
        out[e.track] = e.source
    by_ref = [e for e in entries if e.reference is not None]
    if by_ref:
        out.update(_match_references(tracks, by_ref, references, set(out)))
    if source is not None:
        rest = [t for t in tracks if t.id not in out]
        if cfg.track_id is not None and cfg.track_id in out:
            rest = []  # --track-id names a track the map already gave a source
        elif cfg.track_id is not None and cfg.track_id not in ids:
            select_tracks(tracks, cfg)  # its one-line error naming the tracks there are
        for tid in select_tracks(rest, cfg, target_reference) if rest else ():
            out[tid] = source
    return out


def _match_references(
    tracks: list[Track],
    entries: list[MapEntry],
    references: dict[str, np.ndarray],
    taken: set[int],
) -> dict[int, str]:
    candidates = [t for t in tracks if t.id not in taken and t.embedding is not None]
    if len(candidates) < len(entries):
        raise InvalidInput(
            f"--map: {len(entries)} reference photos but {len(candidates)} tracks with an "
            "identity left to match them to"
        )
    sim = np.array(
        [[float(np.dot(t.embedding, references[e.reference])) for t in candidates] for e in entries]
    )
    rows, cols = linear_sum_assignment(-sim)
    out = {}
    for r, c in zip(rows, cols):
        track = candidates[c]
        log.info(
            "--map %s: track %d (identity cosine %.2f)", entries[r].reference, track.id, sim[r, c]
        )
        out[track.id] = entries[r].source
    return out


def anchor_targets(tracks: list[Track], assignment: dict[int, str]) -> list[dict[str, Any]]:
    """The decision as a farm plan carries it: per chosen track its id, source and every box
    (``[frame, x0, y0, x1, y1]``, whole pixels) the analysis gave it."""
    by_id = {t.id: t for t in tracks}
    return [
        {
            "track": tid,
            "source": source,
            "boxes": [
                [f, *(round(float(v)) for v in by_id[tid].faces[f].box)]
                for f in sorted(by_id[tid].faces)
            ],
        }
        for tid, source in sorted(assignment.items())
    ]


def match_anchors(tracks: list[Track], targets: list[dict[str, Any]]) -> dict[int, str]:
    """Track id → source for the tracks of this run that follow the planned ``targets``.

    A track follows the anchor whose boxes it overlaps (IoU ≥ ``ANCHOR_MIN_IOU``) in the most
    frames; a track that follows none is not swapped. Nothing is chosen here: the plan chose.
    """
    out: dict[int, str] = {}
    anchors = [
        ({int(b[0]): np.asarray(b[1:], np.float64) for b in t["boxes"]}, t["source"])
        for t in targets
    ]
    for track in tracks:
        votes = []
        for boxes, _source in anchors:
            frames = [f for f in track.faces if f in boxes]
            if not frames:
                votes.append(0)
                continue
            ious = iou_matrix(
                np.stack([track.faces[f].box for f in frames]), np.stack([boxes[f] for f in frames])
            ).diagonal()
            votes.append(int((ious >= ANCHOR_MIN_IOU).sum()))
        if votes and max(votes) > 0:
            out[track.id] = anchors[int(np.argmax(votes))][1]
    return out
