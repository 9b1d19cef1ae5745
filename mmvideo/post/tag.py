"""The provenance tag: every output says it contains synthetic faces.

A small JSON document (:class:`ProvenanceTag`) in every output, written after the pixels are
final: video container metadata (``comment``, which mp4/mov/mkv all keep, plus
``mmvideo_provenance``, kept where the muxer allows custom keys), and image headers (EXR and PNG
attribute ``mmvideo:provenance``, DPX user data, TIFF ImageDescription; see
``mmvideo.io.sequence``). It names the tool, its version, the SHA-256 of the checkpoint that made
the faces and the time. ``mmvideo.post.read_tag`` reads it back; ``mmvideo.post.credentials``
signs it into C2PA content credentials.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from mmcore.errors import InvalidInput
from mmvideo import __version__

SCHEMA = "mmvideo.provenance/1"
METADATA_KEY = "mmvideo_provenance"


@dataclass(frozen=True)
class ProvenanceTag:
    """The machine-readable statement every output carries."""

    created: str  # ISO 8601, UTC
    checkpoint_sha256: str | None
    tool: str = "mmvideo"
    version: str = __version__
    synthetic_faces: bool = True
    action: str = "face replaced"
    schema: str = SCHEMA

    def to_text(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))


def make_tag(
    checkpoint_sha256: str | None,
    *,
    now: datetime | None = None,
    created: str | None = None,
) -> ProvenanceTag:
    """A tag for an output made now (or at ``now``, or at the ISO 8601 time ``created``).

    A render farm passes the plan's time as ``created`` so every chunk, and every rerun of one,
    carries the same tag and stays byte-identical.
    """
    if created is not None:
        try:
            # Python 3.10 reads no "Z" suffix
            now = datetime.fromisoformat(created.replace("Z", "+00:00"))  # noqa: FURB162
        except ValueError:
            raise InvalidInput(f"provenance time {created!r} is not ISO 8601") from None
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
    when = (now or datetime.now(UTC)).astimezone(UTC)
    return ProvenanceTag(
        created=when.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        checkpoint_sha256=checkpoint_sha256,
    )


def parse_tag(text: str | bytes | None) -> ProvenanceTag | None:
    """The tag in ``text``, or None when ``text`` is not one of ours."""
    if not text:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        return None
    known = {k: data[k] for k in ProvenanceTag.__dataclass_fields__ if k in data}
    try:
        return ProvenanceTag(**known)
    except TypeError:
        return None


def provenance_metadata(tag: ProvenanceTag, timecode: str | None = None) -> dict[str, str]:
    """Container metadata for a video output (what ``VideoWriter`` adds to its container tags).

    ``timecode`` (a label such as ``01:00:00:00``) makes the mov/mp4 muxer write a tmcd track.
    """
    text = tag.to_text()
    meta = {"comment": text, METADATA_KEY: text}
    if timecode:
        meta["timecode"] = str(timecode)
    return meta
