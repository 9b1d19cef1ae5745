"""What ``mmvideo probe`` adds for post: the start timecode and the provenance tag."""

from __future__ import annotations

import os
from dataclasses import asdict

from mmvideo.io.media import source_timecode
from mmvideo.io.probe import MediaInfo
from mmvideo.post.read_tag import read_provenance


def post_summary(path: str | os.PathLike, info: MediaInfo) -> dict:
    """The timecode and tag of ``path``; ``info`` is its ``mmvideo.io.media.probe_media``."""
    timecode = source_timecode(info)
    tag = read_provenance(path)
    return {
        "timecode": str(timecode) if timecode else None,
        "provenance": asdict(tag) if tag else None,
    }


def post_lines(path: str | os.PathLike, info: MediaInfo) -> list[str]:
    """``post_summary`` as the indented lines of ``mmvideo probe``."""
    summary = post_summary(path, info)
    lines = [f"  timecode: {summary['timecode'] or 'none'}"]
    tag = summary["provenance"]
    if tag is None:
        lines.append("  provenance: no mmvideo tag")
    else:
        lines.append(
            f"  provenance: synthetic faces, {tag['tool']} {tag['version']}, checkpoint sha256 "
            f"{tag['checkpoint_sha256'] or 'unknown'}, created {tag['created']}"
        )
    return lines
