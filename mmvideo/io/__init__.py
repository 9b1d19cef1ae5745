"""Video I/O without face work: probe, decode, encode, random access and the ffmpeg concat.

The names README documents ("From Python", under "Probe and transcode") import from here; the
modules behind them are the stages (``probe``, ``decode``, ``encode``, ``random_access``,
``ffmpeg_backend``).
"""

from mmvideo.io.codecs import EncodeOptions
from mmvideo.io.decode import VideoReader
from mmvideo.io.encode import VideoWriter
from mmvideo.io.ffmpeg_backend import concat_command
from mmvideo.io.frame import Frame
from mmvideo.io.probe import MediaInfo, probe
from mmvideo.io.random_access import open_random_access, read_frames

__all__ = [
    "EncodeOptions",
    "Frame",
    "MediaInfo",
    "VideoReader",
    "VideoWriter",
    "concat_command",
    "open_random_access",
    "probe",
    "read_frames",
]
