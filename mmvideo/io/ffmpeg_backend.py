"""The system-ffmpeg side of I/O, driven through ffmpeg-python.

:class:`FfmpegPipeWriter` is the second encoder backend, for users who pass their own ffmpeg
output arguments: frames go to ffmpeg's stdin as raw RGB video in a NUT stream (raw pixels, but
each with its pts, so VFR survives the pipe), and ffmpeg copies the source's audio/subtitles.
:func:`concat_command` is the command line that joins chunk files without re-encoding (the farm
mode's merge).
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path

import av
import ffmpeg
import numpy as np

from mmcore.atomic import PARTIAL, check_output, temp_beside
from mmcore.errors import InvalidInput, OutputError
from mmvideo.io.codecs import RGB_PIX_FMTS, EncodeOptions, encoder_settings
from mmvideo.io.encode import output_pts, warn_if_fields_lost
from mmvideo.io.frame import Frame
from mmvideo.io.probe import MediaInfo
from mmvideo.io.writer import AtomicWriter

log = logging.getLogger(__name__)

FFMPEG = "ffmpeg"
# AVColorSpace -> the scale filter's out_color_matrix name (unknown decodes as BT.601)
SCALE_MATRICES = {
    1: "bt709",
    4: "fcc",
    5: "bt601",
    6: "smpte170m",
    7: "smpte240m",
    9: "bt2020",
}


def _ffmpeg_error(log_file: Path, out: Path, what: str) -> OutputError:
    """ffmpeg's own message, on one line. A bad option takes two lines (``Unrecognized option
    'foo'.`` then ``Error splitting the argument list``), so the last few are joined."""
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        text = ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    reason = "; ".join(lines[-3:]) if lines else "no message"
    return OutputError(f"{out}: ffmpeg {what} failed ({reason})")


def ffmpeg_command(
    source: MediaInfo,
    options: EncodeOptions,
    tmp: Path,
    muxer_path: Path,
    copy_streams: bool,
) -> list[str]:
    """The ffmpeg command line that encodes NUT-piped frames (pure; tested as a table)."""
    video = source.video
    s = encoder_settings(
        options,
        video.bit_depth,
        muxer_path,
        (video.width, video.height),
        video.field_order,
    )
    video_in = ffmpeg.input("pipe:", format="nut")
    streams = [video_in["v"]]
    kwargs: dict[str, object] = {
        "vcodec": s.codec,
        "pix_fmt": s.pix_fmt,
        "format": s.muxer,
        "fps_mode": "passthrough",
        "enc_time_base": "-1",
        **s.options,
    }
    if s.bit_rate:
        kwargs["b:v"] = s.bit_rate
    if copy_streams:
        src = ffmpeg.input(source.path)
        streams += [src["a?"], src["s?"], src["d?"]]
        kwargs["acodec"] = options.audio_codec
        kwargs["scodec"] = "copy"
        kwargs["dcodec"] = "copy"
    kwargs.update(s.container_options)
    color = source.video.color
    kwargs.update({"color_primaries": str(color.primaries), "color_trc": str(color.transfer)})
    if s.pix_fmt not in RGB_PIX_FMTS:
        kwargs.update({"colorspace": str(color.matrix), "color_range": str(color.range)})
        # the tags alone do not steer ffmpeg's RGB->YUV conversion: name the matrix and range
        # the decoder used, so pixels round-trip as in the PyAV writer
        matrix = SCALE_MATRICES.get(color.matrix, "bt601")
        out_range = "pc" if color.range == 2 else "tv"
        kwargs["vf"] = f"scale=out_color_matrix={matrix}:out_range={out_range}"
    if s.field_order != "progressive":
        # the NUT pipe carries no field flags: mark the frames again for the encoder
        vf = [kwargs["vf"]] if "vf" in kwargs else []
        kwargs["vf"] = ",".join([*vf, f"setfield={s.field_order}"])
    cmd = (
        ffmpeg.output(*streams, str(tmp), **kwargs)
        .global_args("-nostdin", "-loglevel", "error")
        .overwrite_output()
        .compile(cmd=FFMPEG)
    )
    # the user's own output options go last, just before the output file, so they win
    at = cmd.index(str(tmp))
    return cmd[:at] + list(options.ffmpeg_args) + cmd[at:]


class FfmpegPipeWriter(AtomicWriter):
    """Same contract as :class:`~mmvideo.io.encode.VideoWriter`, encoded by the system ffmpeg."""

    def __init__(
        self,
        out_path: str | Path,
        source: MediaInfo,
        options: EncodeOptions,
        copy_streams: bool = True,
    ):
        self.out = check_output(out_path, source.path)
        self.source = source
        self.frames_written = 0
        self._tmp = temp_beside(self.out, PARTIAL)
        self._log = temp_beside(self.out, PARTIAL)
        try:
            cmd = ffmpeg_command(source, options, self._tmp, self.out, copy_streams)
            warn_if_fields_lost(self.out, options.codec, source.video)
            log.debug("ffmpeg: %s", shlex.join(cmd))
            with open(self._log, "wb") as err:
                try:
                    self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=err)
                except OSError as exc:
                    raise OutputError(f"{self.out}: cannot run {FFMPEG} ({exc.strerror})") from exc
        except BaseException:
            self._cleanup()
            raise
        video = source.video
        depth_fmt = "rgb24" if video.bit_depth <= 8 else "rgb48le"
        self._pipe = av.open(self._proc.stdin, "w", format="nut")
        self._stream = self._pipe.add_stream("rawvideo", rate=video.fps or None)
        self._stream.width, self._stream.height, self._stream.pix_fmt = (
            video.width,
            video.height,
            depth_fmt,
        )
        self._stream.codec_context.time_base = video.time_base
        self._stream.time_base = video.time_base
        self._fmt = depth_fmt

    def write(self, frame: Frame) -> None:
        video = self.source.video
        image = frame.image
        if image.shape[:2] != (video.height, video.width):
            raise InvalidInput(
                f"frame {frame.index}: size {image.shape[1]}x{image.shape[0]} "
                f"differs from the stream's {video.width}x{video.height}"
            )
        dtype = np.uint8 if self._fmt == "rgb24" else np.uint16
        vf = av.VideoFrame.from_numpy_buffer(
            np.ascontiguousarray(image, dtype=dtype), format=self._fmt
        )
        vf.pts = output_pts(frame, video)
        vf.time_base = video.time_base
        try:
            for packet in self._stream.encode(vf):
                self._pipe.mux(packet)
        except (OSError, av.error.FFmpegError) as exc:
            raise self._failed() from exc
        self.frames_written += 1

    def _failed(self) -> OutputError:
        """The error ffmpeg reported, read from its log before ``abort`` deletes the log.

        A pipe that broke means ffmpeg has exited (a bad ``--ffmpeg-args`` option fails at
        start): closing stdin lets it finish writing its message."""
        try:
            self._proc.stdin.close()
        except OSError:
            pass  # the pipe is broken: that is the failure being reported
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass  # abort() kills it
        error = _ffmpeg_error(self._log, self.out, "encode")
        self.abort()
        return error

    def close(self) -> Path:
        try:
            try:
                for packet in self._stream.encode(None):
                    self._pipe.mux(packet)
                self._pipe.close()
                self._proc.stdin.close()
            except (OSError, av.error.FFmpegError) as exc:
                raise self._failed() from exc
            code = self._proc.wait()
            if code != 0:
                raise _ffmpeg_error(self._log, self.out, "encode")
            if self.frames_written == 0:
                raise InvalidInput(f"{self.source.path}: no frames to write to {self.out}")
            os.replace(self._tmp, self.out)
        except BaseException:
            self.abort()
            raise
        self._log.unlink(missing_ok=True)
        return self.out

    def abort(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        self._tmp.unlink(missing_ok=True)
        self._log.unlink(missing_ok=True)


def concat_command(
    chunks: str | Path,
    source: str | Path,
    out: str | Path,
    *,
    listing: bool,
    offset: float = 0.0,
    metadata: Mapping[str, str] | None = None,
    timecode: str | None = None,
) -> list[str]:
    """The ffmpeg command line that joins chunk videos into ``out`` without re-encoding (pure;
    tested as a table).

    The video comes from ``chunks``, a concat-demuxer listing (``listing``) or the one chunk
    itself, started ``offset`` seconds late; audio, subtitles, metadata and chapters come from
    ``source``. ``metadata`` (global tags) and ``timecode`` (on the video stream) are set over
    the source's.
    """
    # -copyts: ffmpeg would otherwise move each input to start at 0, and a source whose audio
    # starts before or after its video would lose A/V sync.
    cmd = [FFMPEG, "-nostdin", "-y", "-copyts"]
    if listing:
        cmd += ["-f", "concat", "-safe", "0"]
    if offset:
        cmd += ["-itsoffset", f"{offset:.6f}"]
    cmd += ["-i", str(chunks), "-i", str(source)]
    # Optional maps ("?") keep the source an input even with no audio or subtitles, so its
    # metadata and chapters can still be mapped.
    cmd += ["-map", "0:v:0", "-map", "1:a?", "-map", "1:s?", "-c", "copy"]
    cmd += ["-map_chapters", "1", "-map_metadata", "1"]
    for i, (key, value) in enumerate((metadata or {}).items()):
        cmd += [f"-metadata:g:{i}", f"{key}={value}"]
    if timecode:
        cmd += ["-metadata:s:v:0", f"timecode={timecode}"]
    return [*cmd, str(out)]
