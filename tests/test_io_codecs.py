"""The pure option -> encoder-settings mapping, as a table of expected outputs (FaceFusion style),
and the ffmpeg command lines the pipe backend and the farm merge build."""

from __future__ import annotations

from fractions import Fraction

import pytest

from mmcore.errors import InvalidInput
from mmvideo.io.codecs import EncodeOptions, encoder_settings, parse_bitrate
from mmvideo.io.ffmpeg_backend import concat_command, ffmpeg_command
from mmvideo.io.probe import Color, MediaInfo, VideoInfo

FASTSTART = {"movflags": "+faststart"}

CASES = [
    # (options, source depth, output, size) -> (codec, pix_fmt, bit_rate, options, muxer, container options)
    (
        EncodeOptions(),
        8,
        "o.mp4",
        (64, 48),
        (
            "libx264",
            "yuv420p",
            None,
            {"preset": "medium", "crf": "18"},
            "mp4",
            FASTSTART,
        ),
    ),
    (
        EncodeOptions(),
        10,
        "o.mkv",
        (64, 48),
        (
            "libx264",
            "yuv420p10le",
            None,
            {"preset": "medium", "crf": "18"},
            "matroska",
            {},
        ),
    ),
    (
        EncodeOptions(crf=28, encoder_preset="veryfast"),
        8,
        "o.mov",
        (64, 48),
        (
            "libx264",
            "yuv420p",
            None,
            {"preset": "veryfast", "crf": "28"},
            "mov",
            FASTSTART,
        ),
    ),
    (
        EncodeOptions(bitrate="2500k", faststart=False),
        8,
        "o.mp4",
        (64, 48),
        ("libx264", "yuv420p", 2_500_000, {"preset": "medium"}, "mp4", {}),
    ),
    (
        EncodeOptions(codec="libx265"),
        10,
        "o.mp4",
        (64, 48),
        (
            "libx265",
            "yuv420p10le",
            None,
            {"preset": "medium", "crf": "20", "x265-params": "log-level=error"},
            "mp4",
            FASTSTART,
        ),
    ),
    (
        EncodeOptions(codec="libx265", bit_depth=8),
        10,
        "o.mp4",
        (64, 48),
        (
            "libx265",
            "yuv420p",
            None,
            {"preset": "medium", "crf": "20", "x265-params": "log-level=error"},
            "mp4",
            FASTSTART,
        ),
    ),
    (
        EncodeOptions(codec="prores_ks"),
        8,
        "o.mov",
        (64, 48),
        ("prores_ks", "yuv422p10le", None, {"profile": "3"}, "mov", FASTSTART),
    ),
    (
        EncodeOptions(codec="ffv1"),
        8,
        "o.mkv",
        (64, 48),
        (
            "ffv1",
            "bgr0",
            None,
            {"level": "3", "g": "1", "slicecrc": "1"},
            "matroska",
            {},
        ),
    ),
    (
        EncodeOptions(codec="ffv1"),
        10,
        "o.mkv",
        (64, 48),
        (
            "ffv1",
            "gbrp16le",
            None,
            {"level": "3", "g": "1", "slicecrc": "1"},
            "matroska",
            {},
        ),
    ),
    (
        EncodeOptions(codec="h264_nvenc", encoder_preset="slow"),
        10,
        "o.mp4",
        (64, 48),
        (
            "h264_nvenc",
            "yuv420p",
            None,
            {"preset": "p5", "rc": "vbr", "cq": "19"},
            "mp4",
            FASTSTART,
        ),
    ),
    (
        EncodeOptions(codec="hevc_nvenc", bitrate="8M"),
        10,
        "o.mkv",
        (64, 48),
        (
            "hevc_nvenc",
            "p010le",
            8_000_000,
            {"preset": "p4", "rc": "vbr"},
            "matroska",
            {},
        ),
    ),
    # odd sizes cannot be 4:2:0: full chroma instead of cropping a pixel
    (
        EncodeOptions(),
        8,
        "o.mp4",
        (641, 359),
        (
            "libx264",
            "yuv444p",
            None,
            {"preset": "medium", "crf": "18"},
            "mp4",
            FASTSTART,
        ),
    ),
    (
        EncodeOptions(pix_fmt="yuv422p"),
        8,
        "o.mkv",
        (641, 359),
        ("libx264", "yuv422p", None, {"preset": "medium", "crf": "18"}, "matroska", {}),
    ),
]


@pytest.mark.parametrize(("options", "depth", "out", "size", "expected"), CASES)
def test_encoder_settings_table(options, depth, out, size, expected):
    s = encoder_settings(options, depth, out, size)
    assert (
        s.codec,
        s.pix_fmt,
        s.bit_rate,
        s.options,
        s.muxer,
        s.container_options,
    ) == expected


@pytest.mark.parametrize(
    ("options", "out", "message"),
    [
        (EncodeOptions(codec="mpeg2video"), "o.mp4", "--codec mpeg2video: unsupported"),
        (EncodeOptions(codec="prores_ks"), "o.mp4", "ProRes needs a .mov or .mkv"),
        (EncodeOptions(encoder_preset="warp"), "o.mp4", "--encoder-preset warp"),
        (EncodeOptions(crf=18, bitrate="1M"), "o.mp4", "one or the other"),
        (EncodeOptions(codec="ffv1", crf=0), "o.mkv", "has no --crf"),
        (EncodeOptions(bitrate="fast"), "o.mp4", "--bitrate 'fast'"),
        (EncodeOptions(bitrate="-5M"), "o.mp4", "--bitrate '-5M': expected a number above 0"),
        (EncodeOptions(crf=-5), "o.mp4", "--crf -5: must be from 0 to 51"),
        (EncodeOptions(crf=99), "o.mp4", "--crf 99: must be from 0 to 51"),
        (EncodeOptions(), "o.xyz", "unknown output container .xyz"),
    ],
)
def test_bad_options_are_one_line_errors(options, out, message):
    with pytest.raises(InvalidInput, match=message.replace(".", r"\.").replace("(", r"\(")):
        encoder_settings(options, 8, out)


def test_parse_bitrate():
    assert [parse_bitrate(t) for t in ("8M", "2500k", "900000", "1.5m")] == [
        8_000_000,
        2_500_000,
        900_000,
        1_500_000,
    ]


def _info(path="in.mp4") -> MediaInfo:
    video = VideoInfo(
        index=0,
        codec="h264",
        profile="High",
        width=64,
        height=48,
        stored_width=64,
        stored_height=48,
        pix_fmt="yuv420p",
        bit_depth=8,
        fps=Fraction(25),
        vfr=False,
        frames=3,
        header_frames=3,
        duration=0.12,
        time_base=Fraction(1, 12800),
        rotation=0.0,
        transform="none",
        color=Color(1, 1, 1, 1),
        interlaced=False,
        bit_rate=0,
        frame_pts=(0, 512, 1024),
    )
    return MediaInfo(path, "mp4", 0.12, 0, {}, video, ())


def test_ffmpeg_command_puts_user_args_last(tmp_path):
    options = EncodeOptions(crf=22, ffmpeg_args=("-tune", "film", "-crf", "20"))
    cmd = ffmpeg_command(_info(), options, tmp_path / "t.partial", tmp_path / "o.mp4", True)
    out = cmd.index(str(tmp_path / "t.partial"))
    assert cmd[:2] == ["ffmpeg", "-f"] and "-y" in cmd[out:]
    assert (
        cmd[cmd.index("-vcodec") + 1] == "libx264" and cmd[cmd.index("-pix_fmt") + 1] == "yuv420p"
    )
    assert cmd[out - 4 : out] == [
        "-tune",
        "film",
        "-crf",
        "20",
    ]  # the user's -crf comes after ours
    assert "1:a?" in cmd and cmd[cmd.index("-acodec") + 1] == "copy"
    assert cmd[cmd.index("-fps_mode") + 1] == "passthrough"
    assert cmd[cmd.index("-movflags") + 1] == "+faststart"
    assert cmd[cmd.index("-colorspace") + 1] == "1"
    assert cmd[cmd.index("-vf") + 1] == "scale=out_color_matrix=bt709:out_range=tv"


def test_ffmpeg_command_without_stream_copy(tmp_path):
    cmd = ffmpeg_command(
        _info(), EncodeOptions(codec="ffv1"), tmp_path / "t", tmp_path / "o.mkv", False
    )
    assert "1:a?" not in cmd and "-acodec" not in cmd
    assert (
        cmd[cmd.index("-pix_fmt") + 1] == "bgr0" and "-colorspace" not in cmd and "-vf" not in cmd
    )


COPY_ALL = ["-map", "0:v:0", "-map", "1:a?", "-map", "1:s?", "-c", "copy"]
COPY_ALL += ["-map_chapters", "1", "-map_metadata", "1"]

CONCAT_CASES = [
    # (chunks, listing, offset, metadata, timecode) -> the command after "ffmpeg"
    (
        "job.parts/concat.txt",
        True,
        1.5,
        {"comment": "synthetic faces", "title": "a b"},
        "01:00:00:00",
        [
            *("-nostdin", "-y", "-copyts", "-f", "concat", "-safe", "0"),
            *("-itsoffset", "1.500000", "-i", "job.parts/concat.txt", "-i", "src.mov"),
            *COPY_ALL,
            *("-metadata:g:0", "comment=synthetic faces", "-metadata:g:1", "title=a b"),
            *("-metadata:s:v:0", "timecode=01:00:00:00", "out.mov"),
        ],
    ),
    (  # a source starting at 0: no offset
        "concat.txt",
        True,
        0.0,
        {},
        None,
        [
            *("-nostdin", "-y", "-copyts", "-f", "concat", "-safe", "0"),
            *("-i", "concat.txt", "-i", "src.mov", *COPY_ALL, "out.mov"),
        ],
    ),
    (  # one chunk: remuxed as it is, not through the concat demuxer
        "chunk-000.mkv",
        False,
        0.0,
        {"comment": "x"},
        None,
        [
            *("-nostdin", "-y", "-copyts", "-i", "chunk-000.mkv", "-i", "src.mov", *COPY_ALL),
            *("-metadata:g:0", "comment=x", "out.mov"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("chunks", "listing", "offset", "metadata", "timecode", "args"), CONCAT_CASES
)
def test_concat_command_table(chunks, listing, offset, metadata, timecode, args):
    cmd = concat_command(
        chunks,
        "src.mov",
        "out.mov",
        listing=listing,
        offset=offset,
        metadata=metadata,
        timecode=timecode,
    )
    assert cmd == ["ffmpeg", *args]


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--crf", "99"], "99 is not in the range 0<=x<=51"), (["--threads", "-2"], "x>=0")],
)
def test_transcode_flags_are_range_checked_before_any_file_is_read(
    tmp_path, capsys, flags, message
):
    from mmvideo.commands import main

    rc = main(["transcode", str(tmp_path / "missing.mp4"), str(tmp_path / "o.mp4"), *flags])
    assert rc == 2 and message in capsys.readouterr().err
