"""``mmvideo probe`` and ``mmvideo transcode``."""

from __future__ import annotations

import json
import shlex

import click

from mmcore.atomic import check_output
from mmvideo.commands.options import overwrite_options
from mmvideo.io.codecs import CRF_RANGE, VIDEO_CODECS, X264_PRESETS, EncodeOptions
from mmvideo.io.media import probe_media
from mmvideo.io.probe import MediaInfo
from mmvideo.io.transcode import transcode
from mmvideo.post.probe_report import post_lines, post_summary


def _describe(info: MediaInfo) -> list[str]:
    v = info.video
    fps = f"{float(v.fps):.3f} fps" + (" (VFR)" if v.vfr else "")
    count = f"{v.frames} frames" + (
        f" (header says {v.header_frames})"
        if v.header_frames and v.header_frames != v.frames
        else ""
    )
    color = ", ".join(f"{k} {n}" for k, n in v.color.names().items())
    lines = [
        f"{info.path}: {info.container}, {info.duration:.3f} s, {info.bit_rate // 1000} kb/s",
        (
            f"  video #{v.index}: {v.codec} ({v.profile}), {v.width}x{v.height}, {v.pix_fmt} "
            f"({v.bit_depth}-bit), {fps}, {count}, {v.duration:.3f} s"
        ),
        (
            f"    rotation {v.rotation:g}° ({v.transform} on decode), "
            f"{f'interlaced ({v.field_order})' if v.interlaced else 'progressive'}, {color}"
        ),
    ]
    for s in info.streams:
        if s.index == v.index:
            continue
        extra = (
            f", {s.sample_rate} Hz, {s.layout} ({s.channels} ch), {s.sample_fmt}"
            if s.type == "audio"
            else ""
        )
        lang = f" [{s.language}]" if s.language else ""
        lines.append(f"  {s.type} #{s.index}{lang}: {s.codec}{extra}")
    return lines


@click.command("probe")
@click.argument("file", type=click.Path(dir_okay=True))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def probe_command(file: str, as_json: bool) -> None:
    """Describe FILE: container, streams, fps/VFR, frame count, rotation, color, bit depth, audio."""
    info = probe_media(file)
    if as_json:
        data = info.to_dict()
        data["post"] = post_summary(file, info)
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        click.echo("\n".join(_describe(info) + post_lines(file, info)))


@click.command("transcode")
@click.argument("input", type=click.Path(dir_okay=True))
@click.argument("output", type=click.Path(dir_okay=True))
@click.option("--codec", type=click.Choice(VIDEO_CODECS), default="libx264", show_default=True)
@click.option(
    "--crf",
    type=click.IntRange(*CRF_RANGE),
    help="Quality (x264/x265/NVENC cq), 0 to 51; lower is better.",
)
@click.option(
    "--encoder-preset",
    type=click.Choice(X264_PRESETS),
    help="Speed preset (x264 names; mapped for NVENC).",
)
@click.option("--bitrate", help="Target video bit rate, e.g. 8M (instead of --crf).")
@click.option(
    "--bit-depth",
    type=click.Choice(["8", "10"]),
    help="Output depth (default: the source's, where the codec allows).",
)
@click.option("--pix-fmt", help="Exact encoder pixel format (overrides --bit-depth).")
@click.option(
    "--audio-codec",
    default="copy",
    show_default=True,
    help="'copy' or an encoder such as aac.",
)
@click.option("--no-faststart", is_flag=True, help="Do not move the mp4/mov index to the front.")
@click.option(
    "--threads",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Codec threads (0: automatic).",
)
@click.option(
    "--ffmpeg-args",
    help="Own ffmpeg output options (quoted); encodes through the system ffmpeg.",
)
@click.option(
    "--skip-bad-frames",
    is_flag=True,
    help="Repeat the last good frame over undecodable ones.",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
@overwrite_options
def transcode_command(
    input: str,
    output: str,
    codec: str,
    crf: int | None,
    encoder_preset: str | None,
    bitrate: str | None,
    bit_depth: str | None,
    pix_fmt: str | None,
    audio_codec: str,
    no_faststart: bool,
    threads: int,
    ffmpeg_args: str | None,
    skip_bad_frames: bool,
    progress: bool,
    overwrite: bool | None,
) -> None:
    """Decode INPUT and re-encode it to OUTPUT with no face work (the swap's I/O path)."""
    check_output(output, input, overwrite=overwrite)

    options = EncodeOptions(
        codec=codec,
        crf=crf,
        encoder_preset=encoder_preset,
        bitrate=bitrate,
        bit_depth=int(bit_depth) if bit_depth else None,
        pix_fmt=pix_fmt,
        audio_codec=audio_codec,
        faststart=not no_faststart,
        threads=threads,
        ffmpeg_args=tuple(shlex.split(ffmpeg_args)) if ffmpeg_args else (),
    )
    report = transcode(input, output, options, skip_bad_frames=skip_bad_frames, progress=progress)
    skipped = f", {report.skipped} bad frame(s) replaced" if report.skipped else ""
    click.echo(f"{report.output}: {report.frames} frames{skipped}")
