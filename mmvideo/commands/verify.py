"""``mmvideo verify``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mmvideo.post.verify import verify
from mmvideo.post.watermark import WatermarkConfig


@click.command("verify")
@click.argument("file", type=click.Path())
@click.option(
    "--frames",
    "max_frames",
    type=click.IntRange(1),
    default=60,
    show_default=True,
    help="Frames to pool for watermark detection.",
)
@click.option("--key", default=WatermarkConfig.key, show_default=True, help="Watermark key.")
@click.option(
    "--trust",
    type=click.Path(exists=True, dir_okay=False),
    help="PEM certificate(s) to trust as C2PA signing roots.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def verify_command(file: str, max_frames: int, key: str, trust: str | None, as_json: bool) -> None:
    """Check FILE (video, image or frame pattern) for the mmvideo watermark, tag and C2PA."""
    anchors = Path(trust).read_bytes() if trust else None
    report = verify(
        file,
        max_frames=max_frames,
        watermark=WatermarkConfig(key=key),
        trust_anchors=anchors,
    )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo("\n".join(report.lines()))
