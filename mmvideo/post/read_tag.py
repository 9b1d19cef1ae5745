"""Reading the provenance tag back from a video, an image or an image sequence."""

from __future__ import annotations

import os
from pathlib import Path

import av

from mmcore.errors import InvalidInput, MissingInput
from mmvideo.io import sequence
from mmvideo.post.tag import METADATA_KEY, ProvenanceTag, parse_tag


def _video_tag(path: Path) -> ProvenanceTag | None:
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            dicts = [dict(container.metadata)] + [dict(s.metadata) for s in container.streams]
    except av.error.FFmpegError as exc:
        raise InvalidInput(f"{path}: cannot read metadata ({exc.strerror or exc})") from None
    for meta in dicts:
        for key, value in meta.items():
            if key.lower() in ("comment", METADATA_KEY):
                tag = parse_tag(value)
                if tag is not None:
                    return tag
    return None


def read_provenance(path: str | os.PathLike) -> ProvenanceTag | None:
    """The provenance tag of a video, an image, or the first frame of an image sequence."""
    pattern = sequence.parse_pattern(path)
    if pattern is not None:
        return parse_tag(sequence.probe_sequence(pattern, fill_missing=True).provenance)
    p = Path(path)
    if not p.is_file():
        raise MissingInput(f"{p}: no such file")
    if p.suffix.lower() in sequence.SEQUENCE_KINDS:
        return parse_tag(sequence.read_image_provenance(p))
    return _video_tag(p)
