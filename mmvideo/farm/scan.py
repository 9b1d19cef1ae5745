"""The facts about a clip that planning and merge verification need, from ``mmvideo.io.probe``.

``probe`` demuxes without decoding (but one frame), so scanning a feature-length clip takes
seconds; frames are counted the way the decoder outputs them (edit-list discards excluded).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from mmvideo.io.probe import probe


@dataclass(frozen=True)
class StreamScan:
    """The first video stream of a file: timestamps in display order, and the file's origin."""

    path: str
    time_base: Fraction
    pts: tuple[int, ...]
    fps: float
    origin: float  # seconds of the earliest packet of any stream (priming may be < 0)

    @property
    def frames(self) -> int:
        return len(self.pts)


def scan_video(path: str | Path) -> StreamScan:
    info = probe(path)
    return StreamScan(
        path=str(path),
        time_base=Fraction(info.video.time_base),
        pts=tuple(info.video.frame_pts),
        fps=float(info.video.fps),
        origin=_origin(path),
    )


def _origin(path: str | Path, packets: int = 32) -> float:
    """The earliest timestamp in the file, over the first packets of every stream.

    Timing is only meaningful against it: a muxer that cannot store the audio's negative
    encoder-delay timestamps (Matroska) shifts every stream, so the video's offset from the
    file's origin, not its absolute time, is what keeps picture and sound in sync.
    """
    earliest: dict[int, float] = {}
    seen: dict[int, int] = {}
    with av.open(str(path)) as container:
        wanted = [s for s in container.streams if s.type in ("video", "audio", "subtitle")]
        for packet in container.demux(wanted):
            if packet.pts is None or packet.size == 0:
                continue
            i = packet.stream.index
            t = float(packet.pts * packet.time_base)
            earliest[i] = min(t, earliest.get(i, t))
            seen[i] = seen.get(i, 0) + 1
            if len(seen) == len(wanted) and min(seen.values()) >= packets:
                break
    return min(earliest.values(), default=0.0)
