"""Frame-exact random access for chunked runs: decord first, PyAV as the fallback.

Frame N means the N-th frame :class:`~mmvideo.io.decode.VideoReader` yields. decord is used only
when it agrees with that numbering (same frame count, same timestamps) and when its RGB24 output
loses nothing (8-bit source); otherwise PyAV seeks to the key frame before N and decodes forward.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from mmcore.errors import InvalidInput
from mmvideo.io.decode import VideoReader
from mmvideo.io.frame import Frame
from mmvideo.io.orientation import apply_transform
from mmvideo.io.probe import MediaInfo, probe

log = logging.getLogger(__name__)


class RandomAccessReader(Protocol):
    info: MediaInfo
    backend: str

    def __len__(self) -> int: ...

    def read(self, start: int, stop: int) -> list[Frame]: ...

    def close(self) -> None: ...


def _check_range(info: MediaInfo, start: int, stop: int) -> None:
    n = info.video.frames
    if not 0 <= start <= stop <= n:
        raise InvalidInput(f"{info.path}: frame range {start}..{stop} outside 0..{n}")


class PyAVRandomAccess:
    """Seek + decode forward with PyAV (handles every file PyAV plays, any bit depth)."""

    backend = "pyav"

    def __init__(self, info: MediaInfo, threads: int = 0):
        self.info = info
        self.threads = threads

    def __len__(self) -> int:
        return self.info.video.frames

    def read(self, start: int, stop: int) -> list[Frame]:
        _check_range(self.info, start, stop)
        with VideoReader(
            self.info.path, threads=self.threads, start=start, stop=stop, info=self.info
        ) as reader:
            return list(reader)

    def close(self) -> None:
        """Nothing held open between reads."""


class DecordRandomAccess:
    """decord's indexed reader; pts come from our own index so they match PyAV's exactly."""

    backend = "decord"

    def __init__(self, info: MediaInfo, reader):
        self.info = info
        self._reader = reader

    def __len__(self) -> int:
        return self.info.video.frames

    def read(self, start: int, stop: int) -> list[Frame]:
        _check_range(self.info, start, stop)
        if start == stop:
            return []
        video = self.info.video
        try:
            batch = self._reader.get_batch(list(range(start, stop))).asnumpy()
        except Exception as exc:  # noqa: BLE001 - a bare DECORDError; PyAV can still read it
            log.warning("%s: decord failed (%s); reading with PyAV", self.info.path, exc)
            return PyAVRandomAccess(self.info).read(start, stop)
        return [
            Frame(
                index=i,
                pts=video.frame_pts[i],
                time_base=video.time_base,
                image=apply_transform(batch[i - start], video.transform),
            )
            for i in range(start, stop)
        ]

    def close(self) -> None:
        self._reader = None


def _decord_agrees(info: MediaInfo, reader, first: Frame) -> bool:
    """Same frame count, same relative timestamps (within half a frame), same first pixels."""
    video = info.video
    if len(reader) != video.frames:
        return False
    times = reader.get_frame_timestamp(range(len(reader)))[:, 0]
    half_frame = 0.5 / float(video.fps) if video.fps else 0.0
    start = float(video.frame_pts[0] * video.time_base)
    for i, t in enumerate(times):
        if abs(float(video.frame_pts[i] * video.time_base) - start - (t - times[0])) > half_frame:
            return False
    return bool((reader[0].asnumpy() == first.image).all())


def _open_decord(info: MediaInfo, threads: int) -> DecordRandomAccess | None:
    video = info.video
    # decord yields RGB24 in stored orientation and mishandles rotated files: PyAV for those
    if video.bit_depth > 8 or video.transform != "none":
        return None
    try:
        import decord

        reader = decord.VideoReader(info.path, ctx=decord.cpu(0), num_threads=threads)
        first = PyAVRandomAccess(info, threads).read(0, 1)[0]
        if _decord_agrees(info, reader, first):
            return DecordRandomAccess(info, reader)
        log.info("%s: decord numbers or converts frames differently; using PyAV", info.path)
    except Exception as exc:  # noqa: BLE001 - decord raises a bare DECORDError(Exception)
        log.info(
            "%s: decord cannot read it (%s); using PyAV",
            info.path,
            str(exc).splitlines()[0],
        )
    return None


def open_random_access(
    path: str | Path, threads: int = 0, prefer_decord: bool = True
) -> RandomAccessReader:
    """A reader whose ``read(start, stop)`` returns exactly frames start..stop-1."""
    info = probe(path)
    reader = _open_decord(info, threads) if prefer_decord else None
    return PyAVRandomAccess(info, threads) if reader is None else reader


def read_frames(path: str | Path, start: int, stop: int, threads: int = 0) -> list[Frame]:
    """Frames start..stop-1 of ``path`` (opens, reads, closes)."""
    reader = open_random_access(path, threads)
    try:
        return reader.read(start, stop)
    finally:
        reader.close()
