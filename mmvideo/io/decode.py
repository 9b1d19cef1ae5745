"""Sequential decoding with PyAV: every frame, upright, with its stream pts.

Frame indices are the decoder's output order (what ``ffmpeg -i clip`` yields: edit-list
discarded frames are not frames). ``start``/``stop`` seek to the key frame before ``start``
and decode forward, so a range read is frame-exact.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import av
import numpy as np

from mmcore.errors import DecodeError, InvalidInput
from mmvideo.io.frame import Frame, Picture
from mmvideo.io.orientation import apply_transform
from mmvideo.io.probe import MediaInfo, error_reason, open_input, probe, video_stream

log = logging.getLogger(__name__)


def frame_image(frame: av.VideoFrame, bit_depth: int, transform: str) -> np.ndarray:
    """RGB array of a decoded frame: uint8 for 8-bit sources, uint16 (full scale) for deeper."""
    fmt = "rgb24" if bit_depth <= 8 else "rgb48le"
    image = frame.to_ndarray(format=fmt, src_color_range=frame.color_range or None)
    return apply_transform(image, transform)


class VideoReader:
    """Iterate the video frames of ``path`` as :class:`Frame` records.

    ``threads`` is the decoder thread count (0: one per core). With ``skip_bad_frames`` a
    packet that fails to decode yields a copy of the last good frame (``skipped`` counts
    them) instead of raising :class:`DecodeError`. Each frame keeps the decoder's picture
    (``Frame.decoded``); ``convert=False`` leaves the RGB conversion to the first reader of
    ``Frame.image`` instead of doing it here (on the iterating thread).
    """

    def __init__(
        self,
        path: str | Path,
        threads: int = 0,
        skip_bad_frames: bool = False,
        start: int | None = None,
        stop: int | None = None,
        info: MediaInfo | None = None,
        convert: bool = True,
    ):
        self.path = str(path)
        self.info = info or probe(path)
        n = self.info.video.frames
        self.start = 0 if start is None else start
        self.stop = n if stop is None else min(stop, n)
        if not 0 <= self.start <= self.stop:
            raise InvalidInput(f"{path}: bad frame range {start}..{stop} (clip has {n} frames)")
        self.threads = threads
        self.skip_bad_frames = skip_bad_frames
        self.convert = convert
        self.skipped = 0
        self._container: av.container.InputContainer | None = None
        self._position = self.start  # index of the next frame, for error messages

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self) -> Iterator[Frame]:
        self.close()
        self._container = open_input(self.path)
        stream = video_stream(self._container, self.path)
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = self.threads
        if self.start == self.stop:
            return
        video = self.info.video
        first_pts = video.frame_pts[self.start]
        if self.start > 0:
            self._container.seek(first_pts, stream=stream, backward=True, any_frame=False)
        index = self._position = self.start
        to_image = functools.partial(
            frame_image, bit_depth=video.bit_depth, transform=video.transform
        )
        last: Frame | None = None
        for packet, decoded in self._decode(stream):
            if decoded is None:
                # a bad packet: repeat the last good frame at this packet's time
                if last is None or index >= self.stop:
                    continue
                pts = packet.pts if packet.pts is not None else last.pts
                last = Frame(index, pts, last.time_base, last.image, False, last.interlaced)
                self.skipped += 1
                yield last
                index += 1
                self._position = index
                continue
            if decoded.pts is not None and decoded.pts < first_pts:
                continue  # decoded from the key frame before ``start``
            if index >= self.stop:
                break
            last = Frame(
                index=index,
                pts=decoded.pts,
                time_base=decoded.time_base or stream.time_base,
                image=Picture(decoded, to_image, to_image(decoded) if self.convert else None),
                key_frame=bool(decoded.key_frame),
                interlaced=bool(decoded.interlaced_frame),
            )
            yield last
            index += 1
            self._position = index
        if index < self.stop:
            log.warning(
                "%s: decoder gave %d of %d frames",
                self.path,
                index - self.start,
                len(self),
            )
        if self.skipped:
            log.warning(
                "%s: %d bad frame(s) replaced by the last good frame",
                self.path,
                self.skipped,
            )

    def _decode(self, stream):
        """Yield (packet, frame) pairs; (packet, None) for a packet that failed to decode."""
        demux = self._container.demux(stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                return
            except av.error.FFmpegError as exc:
                self._bad(self._position, exc)
                return
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                self._bad(self._position, exc)
                yield packet, None
                continue
            for frame in frames:
                yield packet, frame

    def _bad(self, index: int, exc: Exception) -> None:
        if not self.skip_bad_frames:
            raise DecodeError(self.path, index, error_reason(exc)) from exc
        log.info("%s: frame %d: %s", self.path, index, error_reason(exc))
