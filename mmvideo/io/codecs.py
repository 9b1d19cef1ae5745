"""Encoder options: the user's knobs (:class:`EncodeOptions`) and the one pure function that maps
them to what the encoder is given (:func:`encoder_settings`). All codec knowledge lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mmcore.errors import InvalidInput

VIDEO_CODECS = ("libx264", "libx265", "prores_ks", "ffv1", "h264_nvenc", "hevc_nvenc")
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
# x264 preset name -> NVENC p1 (fastest) .. p7 (best)
NVENC_PRESETS = {
    "ultrafast": "p1",
    "superfast": "p1",
    "veryfast": "p2",
    "faster": "p3",
    "fast": "p3",
    "medium": "p4",
    "slow": "p5",
    "slower": "p6",
    "veryslow": "p7",
    "placebo": "p7",
}
# CRF (x264/x265) and NVENC cq, on the 8-bit scale every one of them accepts
CRF_RANGE = (0, 51)
DEFAULT_CRF = {"libx264": 18, "libx265": 20, "h264_nvenc": 19, "hevc_nvenc": 21}
# (8-bit pix_fmt, deeper pix_fmt) each codec is fed
PIX_FMTS = {
    "libx264": ("yuv420p", "yuv420p10le"),
    "libx265": ("yuv420p", "yuv420p10le"),
    "prores_ks": ("yuv422p10le", "yuv422p10le"),
    # RGB planes so that a lossless file keeps our RGB frames bit for bit
    "ffv1": ("bgr0", "gbrp16le"),
    "h264_nvenc": ("yuv420p", "yuv420p"),  # NVENC H.264 has no 10-bit 4:2:0 input
    "hevc_nvenc": ("yuv420p", "p010le"),
}
RGB_PIX_FMTS = ("bgr0", "gbrp", "gbrp16le", "rgb24", "rgb48le")
# Codecs that keep an interlaced source's fields, with the codec flags that code each picture as
# two fields (FFV1 needs none: it stores the frame's field order as given). libx265's own field
# mode takes each input picture as one field, not a frame, and NVENC has none: both write
# progressive (the writer warns).
INTERLACED_FLAGS = {"libx264": "+ildct+ilme", "prores_ks": "+ildct", "ffv1": ""}
# container (by file suffix) -> ffmpeg muxer name
MUXERS = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
    ".nut": "nut",
    ".ts": "mpegts",
}


@dataclass(frozen=True)
class EncodeOptions:
    """What the user chose. ``None`` means "the codec's default" (or the source's bit depth).

    ``audio_codec`` is ``"copy"`` (packet for packet) or an encoder name such as ``"aac"``.
    ``ffmpeg_args`` non-empty selects the ffmpeg-python backend: the arguments are passed to the
    system ffmpeg as output options, after ours.
    """

    codec: str = "libx264"
    crf: int | None = None
    encoder_preset: str | None = None
    bitrate: str | None = None
    bit_depth: int | None = None
    pix_fmt: str | None = None
    audio_codec: str = "copy"
    faststart: bool = True
    threads: int = 0
    ffmpeg_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class EncoderSettings:
    """What is handed to PyAV / ffmpeg for one output."""

    codec: str
    pix_fmt: str
    bit_rate: int | None
    options: dict[str, str] = field(default_factory=dict)
    muxer: str = "mp4"
    container_options: dict[str, str] = field(default_factory=dict)
    # what the frames and the stream are flagged: "progressive", "tff" or "bff"
    field_order: str = "progressive"


def parse_bitrate(text: str) -> int:
    """'8M' -> 8000000, '2500k' -> 2500000, '900000' -> 900000."""
    units = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}
    t = text.strip().lower()
    try:
        rate = int(float(t[:-1]) * units[t[-1]]) if t and t[-1] in units else int(t)
    except (ValueError, OverflowError):
        rate = 0
    if rate <= 0:
        raise InvalidInput(f"--bitrate {text!r}: expected a number above 0 with optional k/M/G")
    return rate


def muxer_for(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in MUXERS:
        raise InvalidInput(
            f"{path}: unknown output container {suffix or '(no suffix)'} "
            f"(use one of {', '.join(sorted(MUXERS))})"
        )
    return MUXERS[suffix]


# chroma-subsampled format -> its 4:4:4 sibling, for odd frame sizes that 4:2:x cannot hold
FULL_CHROMA = {
    "yuv420p": "yuv444p",
    "yuv420p10le": "yuv444p10le",
    "yuv422p10le": "yuv444p10le",
    "p010le": "yuv444p16le",
}


def encoder_settings(
    options: EncodeOptions,
    source_bit_depth: int,
    out_path: str | Path,
    size: tuple[int, int] = (2, 2),
    field_order: str = "progressive",
) -> EncoderSettings:
    """Map the user's options to encoder settings. Pure: same inputs, same settings.

    An odd ``size`` (width, height) moves a 4:2:0/4:2:2 default to 4:4:4 rather than crop or pad,
    so every pixel the pipeline wrote is kept. An interlaced source's ``field_order`` ("tff" or
    "bff") is kept where the codec can code fields (:data:`INTERLACED_FLAGS`).
    """
    codec = options.codec
    if codec not in VIDEO_CODECS:
        raise InvalidInput(
            f"--codec {codec}: unsupported (choose one of {', '.join(VIDEO_CODECS)})"
        )
    muxer = muxer_for(out_path)
    if codec == "prores_ks" and muxer not in ("mov", "matroska", "nut"):
        raise InvalidInput(f"{out_path}: ProRes needs a .mov or .mkv file")
    if options.encoder_preset is not None and options.encoder_preset not in X264_PRESETS:
        raise InvalidInput(
            f"--encoder-preset {options.encoder_preset}: choose one of {', '.join(X264_PRESETS)}"
        )
    if options.crf is not None and not CRF_RANGE[0] <= options.crf <= CRF_RANGE[1]:
        raise InvalidInput(f"--crf {options.crf}: must be from {CRF_RANGE[0]} to {CRF_RANGE[1]}")
    if options.crf is not None and options.bitrate is not None:
        raise InvalidInput("--crf and --bitrate: give one or the other")
    if codec in ("prores_ks", "ffv1") and (options.crf is not None or options.bitrate is not None):
        raise InvalidInput(f"--codec {codec}: has no --crf/--bitrate (it is intra-only/lossless)")

    depth = options.bit_depth or source_bit_depth
    pix_fmt = options.pix_fmt or PIX_FMTS[codec][0 if depth <= 8 else 1]
    if options.pix_fmt is None and (size[0] % 2 or size[1] % 2):
        pix_fmt = FULL_CHROMA.get(pix_fmt, pix_fmt)
    bit_rate = parse_bitrate(options.bitrate) if options.bitrate else None
    crf = options.crf if options.crf is not None else DEFAULT_CRF.get(codec)
    preset = options.encoder_preset or "medium"
    opts: dict[str, str] = {}
    if codec in ("libx264", "libx265"):
        opts["preset"] = preset
        if bit_rate is None:
            opts["crf"] = str(crf)
        if codec == "libx265":
            opts["x265-params"] = "log-level=error"
    elif codec in ("h264_nvenc", "hevc_nvenc"):
        opts["preset"] = NVENC_PRESETS[preset]
        opts["rc"] = "vbr"
        if bit_rate is None:
            opts["cq"] = str(crf)
    elif codec == "prores_ks":
        opts["profile"] = "3"  # HQ
    elif codec == "ffv1":
        opts.update({"level": "3", "g": "1", "slicecrc": "1"})

    if field_order == "progressive" or codec not in INTERLACED_FLAGS:
        field_order = "progressive"
    elif INTERLACED_FLAGS[codec]:
        opts["flags"] = INTERLACED_FLAGS[codec]

    container_options = {}
    if options.faststart and muxer in ("mp4", "mov"):
        container_options["movflags"] = "+faststart"
    return EncoderSettings(codec, pix_fmt, bit_rate, opts, muxer, container_options, field_order)
