"""Encoding with PyAV: upright RGB frames in, a finished file out, all or nothing.

Each frame keeps the pts it was decoded with (the encoder and muxer run in the source's time
base), so frame count and timing, VFR included, survive. The source's audio, subtitle and data
streams are copied packet for packet beside the video (or audio re-encoded when asked). The
output is written to a hidden temp file in the output folder and renamed on ``close()``; any
exception removes it. No rotation tag is written: rotation was baked into the pixels on decode.
"""

from __future__ import annotations

import errno
import io
import itertools
import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from mmcore.atomic import PARTIAL, check_output, temp_beside
from mmcore.errors import InvalidInput, OutputError
from mmvideo.io.codecs import (
    INTERLACED_FLAGS,
    RGB_PIX_FMTS,
    EncodeOptions,
    EncoderSettings,
    encoder_settings,
)
from mmvideo.io.frame import Frame
from mmvideo.io.probe import MediaInfo, VideoInfo, error_reason
from mmvideo.io.writer import AtomicWriter

log = logging.getLogger(__name__)

COPY_TYPES = ("audio", "subtitle", "data")
# Seconds demuxed before a range's first frame, so the audio decoder has settled (an AAC frame
# needs the one before it) and a subtitle shown across the cut is found; and after its end,
# for the packets the interleaving puts late.
PRE_ROLL = 10.0
POST_ROLL = 1.0


def encoder_available(codec: str) -> bool:
    """Whether ``codec`` opens here (NVENC needs an NVIDIA GPU and driver, not just the build)."""
    try:
        ctx = av.CodecContext.create(codec, "w")
        ctx.width, ctx.height, ctx.pix_fmt = 256, 256, "yuv420p"
        ctx.time_base = Fraction(1, 25)
        ctx.open()
    except (av.error.FFmpegError, ValueError, OSError):
        return False
    return True


def warn_if_fields_lost(out: Path, codec: str, video: VideoInfo) -> None:
    """Say so when an interlaced input is written progressive (a codec with no field coding)."""
    if video.field_order != "progressive" and codec not in INTERLACED_FLAGS:
        log.warning(
            "%s: the input is interlaced (%s) but %s cannot code fields here, so the output "
            "is progressive (libx264, prores_ks or ffv1 keep the fields)",
            out,
            video.field_order,
            codec,
        )


# channel count -> ffmpeg's default layout, for sources whose layout is only a count (PCM in mkv)
DEFAULT_LAYOUTS = {
    1: "mono",
    2: "stereo",
    3: "2.1",
    4: "quad",
    5: "5.0",
    6: "5.1",
    7: "6.1",
    8: "7.1",
}


def _native_layout(layout: av.AudioLayout) -> str:
    if layout.name.endswith("channels"):
        return DEFAULT_LAYOUTS.get(len(layout.channels), "stereo")
    return layout.name


def stream_window(video: VideoInfo, start: int, stop: int) -> tuple[float | None, float | None]:
    """The source times (seconds) of frames ``[start, stop)``: from the first frame's time to the
    time of frame ``stop``. None at an end the range shares with the clip, so a range that
    starts or ends with the clip keeps the audio before or after its first or last frame."""
    begin = None if start <= 0 else float(video.frame_pts[start] * video.time_base)
    end = None if stop >= video.frames else float(video.frame_pts[stop] * video.time_base)
    return begin, end


def _cut_codec(cc, fallback: str) -> str:
    """The encoder for audio re-encoded only to be cut: the source's own where it opens here
    (Vorbis's is experimental, DTS and TrueHD have none), else ``fallback`` (the container's
    default); the source's name when neither opens, for the error to name it."""
    for name in (cc.name, fallback):
        try:
            ctx = av.CodecContext.create(name, "w")
            ctx.sample_rate, ctx.layout = cc.sample_rate, _native_layout(cc.layout)
            ctx.format = ctx.codec.audio_formats[0].name
            ctx.open()
        except (av.error.FFmpegError, ValueError, TypeError, IndexError):
            continue
        return name
    return cc.name


def _slice_audio(frame: av.AudioFrame, lo: int, hi: int) -> av.AudioFrame:
    """Samples ``[lo, hi)`` of a frame (same format, layout and rate)."""
    samples = frame.to_ndarray()
    # planar: one row per channel; packed: one row of interleaved samples
    per_sample = 1 if frame.format.is_planar else len(frame.layout.channels)
    part = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples[:, lo * per_sample : hi * per_sample]),
        format=frame.format.name,
        layout=frame.layout.name,
    )
    part.sample_rate = frame.sample_rate
    return part


def output_pts(frame: Frame, video: VideoInfo) -> int:
    """The frame's pts in the stream time base (a frame without one gets its nominal time)."""
    if frame.pts is None:
        return round(frame.index / video.fps / video.time_base) if video.fps else frame.index
    if frame.time_base != video.time_base:
        return round(frame.pts * frame.time_base / video.time_base)
    return frame.pts


def _muxer_holds(muxer: str, stream) -> bool:
    """Whether ``muxer`` takes a packet copy of the data ``stream`` (of an open input). Data
    codecs (KLV, bin_data) have no encoder, so ``supported_codecs`` never lists them: writing a
    header to memory with that stream is the muxer's own answer."""
    try:
        with av.open(io.BytesIO(), "w", format=muxer) as probe_out:
            probe_out.add_stream_from_template(stream)
            probe_out.start_encoding()
    except (av.error.FFmpegError, ValueError):
        return False
    return True


def _unplaced_pcm(muxer: str, info) -> bool:
    """PCM whose layout is only a channel count (as PCM in mkv has) going into mp4: the muxer
    takes its header but fails on the trailer, after the whole render, because mp4 stores the
    position of each PCM channel."""
    return (
        muxer == "mp4"
        and info.type == "audio"
        and info.codec.startswith("pcm_")
        and (info.layout or "").endswith("channels")
    )


class _CopiedStreams:
    """The source's non-video streams, fed to the muxer in step with the video.

    ``window`` (source seconds, None: that end of the clip) cuts them to a frame range: audio
    is decoded, cut at the range's first and last frame to the sample and re-encoded (with the
    source's codec unless ``audio_codec`` names one; a packet copy could only cut at whole
    audio frames), subtitle and data packets are kept where their time overlaps the range.
    """

    def __init__(
        self,
        output,
        source: MediaInfo,
        audio_codec: str,
        out_path: Path,
        window: tuple[float | None, float | None] = (None, None),
    ):
        self.window = window
        self.cut = window != (None, None)
        self.input = av.open(source.path, metadata_errors="replace")
        wanted = []
        for info in source.streams:
            reencoded = info.type == "audio" and audio_codec != "copy"
            if (
                info.type not in COPY_TYPES
                or reencoded
                or (
                    info.codec in output.supported_codecs
                    and not _unplaced_pcm(output.format.name, info)
                )
                or (
                    info.type == "data"
                    and info.codec != "none"
                    and _muxer_holds(output.format.name, self.input.streams[info.index])
                )
            ):
                wanted.append(info.index)
            elif info.type == "data":
                # a QuickTime timecode track has no codec: its timecode travels as the video stream tag
                reason = (
                    "a timecode travels as the video stream tag"
                    if info.codec == "none"
                    else (f"the {output.format.name} container cannot hold it")
                )
                log.warning(
                    "%s: data stream #%d (%s) not copied (%s)",
                    out_path,
                    info.index,
                    info.codec,
                    reason,
                )
            else:
                hint = "use --audio-codec aac" if info.type == "audio" else "use another container"
                self.input.close()
                raise OutputError(
                    f"{out_path}: container cannot hold {info.type} stream "
                    f"#{info.index} ({info.codec}); {hint}"
                )
        self.pairs = {}  # input stream index -> output stream
        self.encoders = {}  # input stream index -> audio output stream being re-encoded
        chosen = [s for s in self.input.streams if s.type in COPY_TYPES and s.index in wanted]
        self.next_sample: dict[int, int] = {}  # input index -> position of its next decoded sample
        for stream in chosen:
            codec = audio_codec
            if codec == "copy" and self.cut and stream.type == "audio":
                codec = _cut_codec(stream.codec_context, output.default_audio_codec)
            try:
                self.pairs[stream.index] = self._add(output, stream, codec)
            except (ValueError, av.error.FFmpegError) as exc:
                self.input.close()
                why = "" if codec == audio_codec else " (to cut the audio to the frame range)"
                raise OutputError(
                    f"{out_path}: unknown or unusable audio encoder {codec!r}{why}"
                ) from exc
            if codec != audio_codec:
                log.info(
                    "%s: audio #%d re-encoded (%s) to cut it at the range's first and last frame",
                    out_path,
                    stream.index,
                    codec,
                )
        if chosen and window[0] is not None:
            self.input.seek(int(max(0.0, window[0] - PRE_ROLL) * av.time_base))
        self.demux = self.input.demux(chosen) if chosen else iter(())
        self.pending: av.Packet | None = None
        self.bytes_muxed = 0  # of copied packets (re-encoded audio, small, not counted)

    def _add(self, output, stream, audio_codec: str):
        if stream.type == "audio" and audio_codec != "copy":
            cc = stream.codec_context
            out_stream = output.add_stream(audio_codec, rate=cc.sample_rate)
            out_stream.layout = _native_layout(cc.layout)
            if audio_codec == cc.name:
                # re-encoded only to be cut: keep the source's rate and sample format
                if cc.bit_rate:
                    out_stream.bit_rate = cc.bit_rate
                formats = out_stream.codec_context.codec.audio_formats or ()
                if cc.format.name in {f.name for f in formats}:
                    out_stream.format = cc.format.name
            self.encoders[stream.index] = out_stream
        else:
            out_stream = output.add_stream_from_template(stream)
        out_stream.metadata.update(stream.metadata)
        out_stream.disposition = stream.disposition
        return out_stream

    def pump(self, output, until: float | None) -> None:
        """Mux source packets whose time is before ``until`` seconds (all when None)."""
        while True:
            if self.pending is None:
                self.pending = next(self.demux, None)
                if self.pending is None:
                    return
            packet = self.pending
            ts = packet.dts if packet.dts is not None else packet.pts
            t = None if ts is None else float(ts * packet.time_base)
            end = self.window[1]
            if end is not None and t is not None and t > end + POST_ROLL:
                self.demux, self.pending = iter(()), None  # past the range: read no further
                return
            if until is not None and t is not None and t > until:
                return
            self.pending = None
            self._mux(output, packet)

    def _mux(self, output, packet: av.Packet) -> None:
        index = packet.stream.index
        if index in self.encoders:
            out_stream = self.encoders[index]
            for frame in packet.decode():
                frame = self._cut(index, frame)
                if frame is None:
                    continue
                for out in out_stream.encode(frame):
                    output.mux(out)
            return
        if packet.size == 0:
            return  # demuxer's end-of-stream marker
        if self.cut and not self._overlaps(packet):
            return
        packet.stream = self.pairs[index]
        output.mux(packet)
        self.bytes_muxed += packet.size

    def _cut(self, index: int, frame: av.AudioFrame) -> av.AudioFrame | None:
        """The frame's samples inside the window, timed by sample count from the first decoded
        frame (container timestamps may be rounded to the millisecond), or None."""
        rate = frame.sample_rate
        first = self.next_sample.get(index)
        if first is None:
            first = round(frame.pts * frame.time_base * rate) if frame.pts is not None else 0
        n = frame.samples
        self.next_sample[index] = first + n
        begin, end = self.window
        lo = 0 if begin is None else min(n, max(0, round(begin * rate) - first))
        hi = n if end is None else max(0, min(n, round(end * rate) - first))
        if lo >= hi:
            return None
        if (lo, hi) != (0, n):
            frame = _slice_audio(frame, lo, hi)
        frame.pts, frame.time_base = first + lo, Fraction(1, rate)
        return frame

    def _overlaps(self, packet: av.Packet) -> bool:
        """Whether a subtitle or data packet is shown within the window."""
        if packet.pts is None:
            return False
        t = float(packet.pts * packet.time_base)
        shown = float((packet.duration or 0) * packet.time_base)
        begin, end = self.window
        starts_after = begin is None or t >= begin
        still_shown = begin is not None and t + shown > begin
        return (starts_after or still_shown) and (end is None or t < end)

    def flush(self, output) -> None:
        self.pump(output, None)
        for out_stream in self.encoders.values():
            for out in out_stream.encode(None):
                output.mux(out)
        self.input.close()


class VideoWriter(AtomicWriter):
    """Encode :class:`Frame` records to ``out_path`` with ``options``; atomic on close.

    ``copy_streams=False`` writes the video alone (chunk files that are merged later).
    ``copy_range=(start, stop)``: the frames written are the source's ``[start, stop)``, and
    the copied streams are cut to that range (see :class:`_CopiedStreams`).
    """

    def __init__(
        self,
        out_path: str | Path,
        source: MediaInfo,
        options: EncodeOptions,
        copy_streams: bool = True,
        copy_range: tuple[int, int] | None = None,
    ):
        self._window = stream_window(source.video, *copy_range) if copy_range else (None, None)
        self.out = check_output(out_path, source.path)
        self.source = source
        self.settings: EncoderSettings = encoder_settings(
            options,
            source.video.bit_depth,
            self.out,
            (source.video.width, source.video.height),
            source.video.field_order,
        )
        self.frames_written = 0
        # video packets and bytes (copied streams' too) handed to the muxer, for the estimate of
        # a full disk's error (the encoder holds frames back, the muxer reports failures late)
        self._packets_muxed = self._bytes_muxed = 0
        self._frames_expected = copy_range[1] - copy_range[0] if copy_range else source.video.frames
        self._tmp = temp_beside(self.out, PARTIAL)
        self._output = None
        self._copied: _CopiedStreams | None = None
        try:
            self._open(options, copy_streams)
        except BaseException:
            self.abort()
            raise

    def _open(self, options: EncodeOptions, copy_streams: bool) -> None:
        s, video = self.settings, self.source.video
        self._output = av.open(
            str(self._tmp), "w", format=s.muxer, container_options=s.container_options
        )
        self._output.metadata.update(self.source.metadata)
        stream = self._output.add_stream(s.codec, rate=video.fps if video.fps else None)
        stream.metadata.update(
            next(i.metadata for i in self.source.streams if i.index == video.index)
        )
        stream.width, stream.height, stream.pix_fmt = (
            video.width,
            video.height,
            s.pix_fmt,
        )
        stream.codec_context.time_base = video.time_base
        stream.time_base = video.time_base
        stream.options = dict(s.options)
        if s.bit_rate:
            stream.bit_rate = s.bit_rate
        stream.codec_context.thread_count = options.threads
        stream.thread_type = "AUTO"
        self._rgb = s.pix_fmt in RGB_PIX_FMTS
        cc, color = stream.codec_context, video.color
        cc.color_primaries, cc.color_trc = color.primaries, color.transfer
        cc.colorspace = 0 if self._rgb else color.matrix
        cc.color_range = 2 if self._rgb else color.range
        self._flag_fields = self._field_flagger(cc)
        self._stream = stream
        if copy_streams:
            self._copied = _CopiedStreams(
                self._output, self.source, options.audio_codec, self.out, self._window
            )
        try:
            self._output.start_encoding()
        except (av.error.FFmpegError, ValueError) as exc:
            hint = "; NVENC needs an NVIDIA GPU and driver" if "nvenc" in s.codec else ""
            raise OutputError(
                f"{self.out}: cannot start {s.codec} in {s.muxer} ({error_reason(exc)}){hint}"
            ) from exc

    def _field_flagger(self, cc):
        """For an interlaced output, flag the stream and return the filter that marks each frame
        with the field order (the encoders read it from the frame; PyAV cannot set it)."""
        order = self.settings.field_order
        if order == "progressive":
            warn_if_fields_lost(self.out, self.settings.codec, self.source.video)
            return None
        # AV_FIELD_TB / AV_FIELD_BT: what ffmpeg itself writes for frames coded as fields
        cc.field_order = 4 if order == "tff" else 5
        graph = av.filter.Graph()
        chain = [
            graph.add_buffer(
                width=cc.width,
                height=cc.height,
                format=self.settings.pix_fmt,
                time_base=self.source.video.time_base,
            ),
            graph.add("setfield", order),
            graph.add("buffersink"),
        ]
        for a, b in itertools.pairwise(chain):
            a.link_to(b)
        graph.configure()

        def flag(vf: av.VideoFrame) -> av.VideoFrame:
            graph.push(vf)
            return graph.pull()

        return flag

    def _passthrough(self, frame: Frame) -> av.VideoFrame | None:
        """The decoder's frame itself, when nothing changed it and the encoder takes its format."""
        decoded, video = frame.decoded, self.source.video
        if (
            decoded is None
            or video.transform != "none"
            or decoded.format.name != self.settings.pix_fmt
            or (decoded.width, decoded.height) != (video.width, video.height)
        ):
            return None
        # a decoded I-frame would force a key frame in libx264/x265; let the encoder choose, as ffmpeg does
        decoded.pict_type = av.video.frame.PictureType.NONE
        return decoded

    def _to_av(self, frame: Frame) -> av.VideoFrame:
        video = self.source.video
        vf = self._passthrough(frame)
        if vf is None:
            vf = self._convert(frame)
        # Encoders such as prores_ks take primaries/transfer from each frame, not the context.
        vf.color_primaries, vf.color_trc = video.color.primaries, video.color.transfer
        vf.pts = output_pts(frame, video)
        vf.time_base = video.time_base
        return self._flag_fields(vf) if self._flag_fields else vf

    def _convert(self, frame: Frame) -> av.VideoFrame:
        image = frame.image
        video = self.source.video
        if image.shape[:2] != (video.height, video.width):
            raise InvalidInput(
                f"frame {frame.index}: size {image.shape[1]}x{image.shape[0]} "
                f"differs from the stream's {video.width}x{video.height}"
            )
        fmt = "rgb24" if image.dtype == np.uint8 else "rgb48le"
        # wraps the array without a copy (at 1080p a copy costs about half a color conversion)
        vf = av.VideoFrame.from_numpy_buffer(np.ascontiguousarray(image), format=fmt)
        if self._rgb:
            vf = vf.reformat(format=self.settings.pix_fmt)
        else:
            color = video.color
            # the source's matrix and range, so RGB->YUV inverts the decoder's YUV->RGB
            vf = vf.reformat(
                format=self.settings.pix_fmt,
                dst_colorspace=color.matrix if color.matrix != 2 else None,
                dst_color_range=color.range or 1,
            )
        return vf

    def write(self, frame: Frame) -> None:
        vf = self._to_av(frame)
        try:
            packets = self._stream.encode(vf)
        except av.error.FFmpegError as exc:
            raise OutputError(
                f"{self.out}: encoder {self.settings.codec} failed at frame "
                f"{frame.index} ({error_reason(exc)})"
            ) from exc
        try:
            self._mux(packets)
        except OSError as exc:
            raise self._write_error(exc) from exc
        self.frames_written += 1

    def _mux(self, packets) -> None:
        for packet in packets:
            if self._copied is not None and packet.dts is not None:
                self._copied.pump(self._output, float(packet.dts * packet.time_base))
            self._output.mux(packet)
            self._packets_muxed += 1
            self._bytes_muxed += packet.size

    def close(self) -> Path:
        """Flush, finish the file and move it into place. Returns the final path."""
        if self._output is None:
            return self.out
        try:
            if self.frames_written == 0:
                raise InvalidInput(f"{self.source.path}: no frames to write to {self.out}")
            try:
                self._mux(self._stream.encode(None))
                if self._copied is not None:
                    self._copied.flush(self._output)
                self._output.close()
            except OSError as exc:
                raise self._write_error(exc) from exc
            self._output = None
            os.replace(self._tmp, self.out)
        except BaseException:
            self.abort()
            raise
        log.info("%s: %d frames written", self.out, self.frames_written)
        return self.out

    def _write_error(self, exc: OSError) -> OutputError:
        """One line for a failed write; for a full disk, the folder and the space it needs,
        estimated from the bytes per frame written so far (the partial is deleted next, so the
        whole output must fit)."""
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            return OutputError(f"{self.out}: write failed ({error_reason(exc)})")
        written = self._bytes_muxed + (self._copied.bytes_muxed if self._copied else 0)
        total = max(self._frames_expected, self._packets_muxed)
        need = written / max(self._packets_muxed, 1) * total
        return OutputError(
            f"{os.path.abspath(self.out.parent)}: no space left on the device after "
            f"{written / 1e6:.1f} MB of {self.out.name} ({self._packets_muxed} frames); at that "
            f"rate its {total} frames need about {need / 1e6:.1f} MB free there"
        )

    def abort(self) -> None:
        """Drop the partial output (called on any error)."""
        if self._copied is not None:
            self._copied.input.close()
        if self._output is not None:
            try:
                self._output.close()
            except (av.error.FFmpegError, ValueError, OSError):
                pass  # the file is deleted next; a failed trailer write does not matter
            self._output = None
        self._tmp.unlink(missing_ok=True)
