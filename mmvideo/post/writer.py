"""The hand-offs every output gets, wrapped around a plain ``mmvideo.io.media`` writer: the
provenance tag, the timecode of the first written frame, the optional watermark, and C2PA
signing once the output is complete."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from mmcore.errors import InvalidInput
from mmvideo.io import media
from mmvideo.io.codecs import EncodeOptions
from mmvideo.io.probe import MediaInfo
from mmvideo.io.timecode import Timecode
from mmvideo.io.writer import AtomicWriter
from mmvideo.post.credentials import can_sign, sign_c2pa
from mmvideo.post.tag import parse_tag, provenance_metadata
from mmvideo.post.watermark import WatermarkWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PostOptions:
    """The hand-offs every output gets (see ``mmvideo.post``)."""

    provenance: str | None = None  # ProvenanceTag.to_text()
    timecode: Timecode | None = None  # of the input's first frame (position 0)
    watermark: bool = False
    sign: tuple[str, str] | None = None  # (certificate chain PEM, private key PEM)
    sequence_options: dict = field(default_factory=dict)  # extra SequenceWriterOptions fields


class PostWriter(AtomicWriter):
    """Finishes an output: closes the inner writer, then signs what it wrote (if asked)."""

    def __init__(self, inner, post: PostOptions):
        self.inner = inner
        self.post = post

    def write(self, frame) -> None:
        self.inner.write(frame)

    def close(self):
        result = self.inner.close()
        if self.post.sign:
            tag = parse_tag(self.post.provenance)
            if tag is None:
                raise InvalidInput("--sign needs the provenance tag of the output")
            paths = result if isinstance(result, list) else [result]
            signable = [p for p in paths if can_sign(p)]
            if not signable:
                log.warning("%s: C2PA cannot be embedded in this format; not signed", paths[0])
            for path in signable:
                sign_c2pa(path, *self.post.sign, tag)
        return result

    def abort(self) -> None:
        self.inner.abort()

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def open_writer(
    out_path: str | os.PathLike,
    info: MediaInfo,
    options: EncodeOptions,
    *,
    copy_streams: bool = True,
    start: int = 0,
    stop: int | None = None,
    post: PostOptions | None = None,
) -> PostWriter:
    """``mmvideo.io.media.open_writer`` (same ``start``/``stop``/``copy_streams``) with the post
    hand-offs applied: the tag in the container metadata or the image headers, the timecode,
    the watermark on every frame, the C2PA signature on close."""
    post = post or PostOptions()
    tag = parse_tag(post.provenance) if post.provenance else None
    writer = media.open_writer(
        out_path,
        info,
        options,
        copy_streams=copy_streams,
        start=start,
        stop=stop,
        timecode=post.timecode,
        metadata=provenance_metadata(tag) if tag else None,
        sequence_options={"provenance": post.provenance, **post.sequence_options},
    )
    if post.watermark:
        writer = WatermarkWriter(writer)
    return PostWriter(writer, post)
