"""The facts about a clip that planning and merge verification need, from ``mmvideo.io.probe``.

``probe`` demuxes without decoding (but one frame), so scanning a feature-length clip takes
seconds; frames are counted the way the decoder outputs them (edit-list discards excluded).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from mmvideo.io.probe import probe


@dataclass(frozen=True)
class StreamScan:
    """The first video stream of a file (timestamps in display order) and what else it carries."""

    path: str
    time_base: Fraction
    pts: tuple[int, ...]
    fps: float
    has_audio: bool
    has_subtitles: bool

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
        has_audio=bool(info.audio),
        has_subtitles=any(s.type == "subtitle" for s in info.streams),
    )
