"""Decode and re-encode with no face work: the swap's I/O path on its own, to check and time it."""

from __future__ import annotations

import logging
import threading
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from mmcore.atomic import check_output
from mmcore.errors import InvalidInput
from mmvideo.io.codecs import EncodeOptions
from mmvideo.io.decode import VideoReader
from mmvideo.io.encode import VideoWriter
from mmvideo.io.ffmpeg_backend import FfmpegPipeWriter
from mmvideo.io.probe import probe
from mmvideo.progress import bar
from mmvideo.queues import threaded

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TranscodeReport:
    output: Path
    frames: int
    skipped: int


def open_writer(
    out_path: str | Path,
    info,
    options: EncodeOptions,
    copy_streams: bool = True,
    copy_range: tuple[int, int] | None = None,
):
    """The PyAV writer, or the ffmpeg-python one when the user gave ffmpeg arguments.

    ``copy_range=(start, stop)``: the frames to be written, whose audio and subtitles are copied.
    """
    whole = copy_range is None or copy_range == (0, info.video.frames)
    if options.ffmpeg_args:
        if copy_streams and not whole:
            raise InvalidInput(
                "--ffmpeg-args writes whole clips only (the ffmpeg pipe cannot cut the audio "
                "to a frame range)"
            )
        return FfmpegPipeWriter(out_path, info, options, copy_streams=copy_streams)
    return VideoWriter(
        out_path,
        info,
        options,
        copy_streams=copy_streams,
        copy_range=copy_range,
    )


def transcode(
    in_path: str | Path,
    out_path: str | Path,
    options: EncodeOptions,
    skip_bad_frames: bool = False,
    progress: bool = False,
) -> TranscodeReport:
    """Decode every frame of ``in_path`` and encode it to ``out_path`` (atomic)."""
    check_output(out_path, in_path)
    info = probe(in_path)
    # no face work: frames stay in the decoder's YUV, except for the ffmpeg pipe (raw RGB), whose
    # conversion then runs on the decode thread
    reader = VideoReader(
        in_path, threads=options.threads, skip_bad_frames=skip_bad_frames, info=info,
        convert=bool(options.ffmpeg_args),
    )  # fmt: skip
    frames = threaded(reader, threading.Event())
    # exits in reverse: writer (abort on error), then the decode thread, then the reader
    with (
        reader,
        closing(frames),
        open_writer(out_path, info, options) as writer,
        bar(len(reader), Path(in_path).name, show=progress) as shown,
    ):
        for frame in frames:
            writer.write(frame)
            shown.update()
    return TranscodeReport(Path(out_path), writer.frames_written, reader.skipped)
