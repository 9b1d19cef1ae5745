"""``mmvideo preview``: the contact sheet of a shot (made by ``mmvideo.preview``)."""

from __future__ import annotations

from pathlib import Path

import click

from mmcore.errors import OutputError
from mmvideo.commands.options import (
    FACE_SECTIONS,
    checkpoint_settings,
    config_options,
    merged_config,
    overwrite_options,
)
from mmvideo.commands.swap import check_paths, load_mask_models, require_input
from mmvideo.io.sequence import oiio_module
from mmvideo.post.tag import make_tag
from mmvideo.preview import (
    PREVIEW_USERS,
    contact_sheet,
    render_rows,
    write_sheet,
)


@click.command("preview")
@click.option("--source", required=True, type=click.Path(), help="Image of the actor to insert.")
@click.option("--in", "input_path", required=True, help="Input video or frame pattern.")
@click.option(
    "--frames",
    required=True,
    help="Range A-B (sequence frame numbers or video indices).",
)
@click.option("--out", "output", required=True, help="Contact sheet (.png).")
@click.option("--count", default=6, show_default=True, type=click.IntRange(1, 24))
@click.option("--preset", default="balanced", show_default=True)
@click.option(
    "--checkpoint",
    default=None,
    help="MagicMask checkpoint (default: the embedded one).",
)
@click.option("--device", default="cpu", show_default=True)
@click.option("--warmup", default=25, show_default=True, help="Frames analyzed before A.")
@click.option("--fill-missing", is_flag=True, help="Repeat the previous frame over sequence gaps.")
@click.option("--height", default=200, show_default=True, help="Thumbnail height in pixels.")
@overwrite_options
# all but the encoder's: the sheet selects faces without a reference photo or a map (one
# source), and leaves torch's thread count as it is
@config_options((*FACE_SECTIONS, "generate", "compose"), without=("target_face", "map", "threads"))
def preview_command(
    source: str,
    input_path: str,
    frames: str,
    output: str,
    count: int,
    preset: str,
    checkpoint: str | None,
    device: str,
    warmup: int,
    fill_missing: bool,
    height: int,
    overwrite: bool | None,
    **params,
) -> None:
    """Contact sheet of original | swap | mask for a spread of frames in --frames A-B.

    Takes the swap's face and blend flags (``--face-backend``, ``--detector``, ``--mask-feather`` ...),
    so the sheet shows what ``mmvideo swap`` with the same flags renders."""
    from mmvideo.generate import load_models  # deferred: torch, only once the paths are checked

    out = Path(output)
    if out.suffix.lower() != ".png":
        raise OutputError(f"{out}: the contact sheet is a .png file")
    cfg = merged_config(preset, params, checkpoint_settings(checkpoint))
    oiio_module(PREVIEW_USERS)
    require_input(input_path, "--in")
    check_paths(
        out,
        overwrite,
        input_path,
        checkpoint,
        source=source,
        face_backend=cfg.detect.face_backend,
    )
    masks = load_mask_models(cfg, device)
    models = load_models(checkpoint, device)
    rows = render_rows(
        source,
        input_path,
        frames,
        cfg,
        models,
        count=count,
        warmup=warmup,
        fill_missing=fill_missing,
        masks=masks,
    )
    title = f"{Path(source).name} -> {Path(input_path).name}, frames {frames}"
    sheet = contact_sheet(rows, title, height)
    write_sheet(out, sheet, make_tag(models.sha256).to_text())
    no_face = [r.label for r in rows if not r.face_found]
    click.echo(f"{out}: {len(rows)} frames" + (f", no face in {no_face}" if no_face else ""))
