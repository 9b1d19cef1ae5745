"""``mmvideo swap`` and ``mmvideo tracks``: the command-line edge of the swap pipeline.

Every config key (``mmvideo/config.py``) is also a flag of the same name; a flag given on the
command line wins over the preset.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import click
import cv2
import numpy as np

from magicmask.face.analyzer import FaceAnalyzer, check_backend_installed
from magicmask.face.image import load_image
from mmcore.atomic import atomic_output, check_output
from mmcore.errors import MissingInput, MMVideoError, OutputError
from mmvideo.commands.options import (
    FACE_SECTIONS,
    SOURCE_KEYS,
    TARGET_KEYS,
    checkpoint_settings,
    config_options,
    merged_config,
    overwrite_options,
)
from mmvideo.config import DEFAULT_PRESET, SwapJob, config_to_toml
from mmvideo.io.media import frame_range, probe_media
from mmvideo.io.sequence import oiio_module, parse_pattern
from mmvideo.post.credentials import c2pa_module
from mmvideo.progress import Progress
from mmvideo.targets import check_map_files, map_files, parse_map

log = logging.getLogger(__name__)


class UnswappedFaces(MMVideoError):
    """``--require-all``: a swapped track's face went unswapped in some written frames (the
    output is complete and kept; the exit code says it needs a look)."""

    exit_code = 6


def check_map(entries: tuple[str, ...]) -> None:
    """A ``--map`` (flag or preset key) that can run: well-formed pairs and every photo
    readable, checked before any model loads."""
    parsed = parse_map(entries)
    check_map_files(parsed)
    for e in parsed:
        load_image(e.source)
        if e.reference is not None:
            load_image(e.reference)


def check_paths(
    output: str | Path,
    overwrite: bool | None,
    *inputs: str | Path | None,
    source: str | Path | None = None,
    face_backend: str = "dlib",
) -> None:
    """Everything a render command can check in a second, before it spends seconds loading
    models: the source image decodes, the face backend's package and, for image sequences in
    or out, OpenImageIO are installed, and the output (a file, or a sequence's frames) may be
    written under the -y/-n choice."""
    if source is not None:
        load_image(source)
    check_backend_installed(face_backend)
    if any(i is not None and parse_pattern(i) for i in inputs):
        oiio_module()
    pattern = parse_pattern(output)
    if pattern is None:
        check_output(output, *inputs, source, overwrite=overwrite)
        return
    oiio_module()
    # a frame's path checks the folder; existing frames of the pattern count as the output
    check_output(pattern.path(0), *inputs, source)
    existing = pattern.scan()
    if existing and overwrite is not True:
        raise OutputError(
            f"{output}: {len(existing)} frames already exist; pass -y/--overwrite to replace them"
        )


def check_handoffs(cfg, overwrite: bool | None) -> None:
    """``--matte-out`` and ``--crop-out`` can be written (under -y/-n), before models load."""
    from mmvideo.matte import crop_folder, matte_pattern

    if cfg.encode.matte_out:
        matte_pattern(cfg.encode.matte_out, overwrite)
    if cfg.encode.crop_out:
        crop_folder(cfg.encode.crop_out, overwrite)


def load_mask_models(cfg, device: str = "cpu"):
    """The models of ``--mask``'s types beyond the hull (the hand models; the user's BiSeNet
    ``79999_iter.pth`` in ``--face-models``), loaded now: a missing file, or one that is not
    those weights, is refused in one line before the generator loads or a frame is decoded.
    None with the hull alone (nothing to load, no torch import)."""
    if cfg.compose.mask_types() == ("hull",):
        return None
    from mmvideo.pipeline import mask_models  # deferred: torch, as the models below

    return mask_models(cfg, device)


def require_input(path: str | None, flag: str) -> str:
    """``path`` given and present (a file, or a frame pattern), else the usage error."""
    if not path:
        raise click.UsageError(f"{flag} is required")
    if parse_pattern(path) is None and not Path(path).is_file():
        raise MissingInput(f"{path}: file not found ({flag})")
    return path


@click.command("swap")
@click.option(
    "--source",
    "source",
    help="Image of the actor whose face is inserted (with --map: into the tracks it leaves).",
)
@click.option("--in", "input_path", help="Input video.")
@click.option("--out", "output", help="Output video (written atomically).")
@click.option(
    "--preset",
    default=DEFAULT_PRESET,
    show_default=True,
    help="fast | balanced | quality, or a .toml file.",
)
@click.option(
    "--checkpoint",
    default=None,
    help="MagicMask checkpoint (default: the embedded one).",
)
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:N].")
@click.option("--start", default=0, show_default=True, help="First output frame.")
@click.option("--stop", type=int, default=None, help="Stop before this frame (default: the end).")
@click.option(
    "--warmup",
    default=25,
    show_default=True,
    help="Frames before --start analyzed to settle the tracker and filters.",
)
@click.option(
    "--lookahead",
    default=0,
    show_default=True,
    help="Frames from --stop on analyzed (not written), as RTS smoothing of a longer run sees them.",
)
@click.option(
    "--frames",
    default=None,
    help="Render only A-B (inclusive; frame numbers for a sequence); overrides --start/--stop.",
)
@click.option("--timecode", default=None, help="Start timecode of the input (HH:MM:SS:FF).")
@click.option("--fill-missing", is_flag=True, help="Repeat the previous frame over sequence gaps.")
@click.option("--watermark", is_flag=True, help="Embed the invisible mmvideo watermark.")
@click.option(
    "--sign",
    nargs=2,
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="CERT KEY: embed signed C2PA content credentials (mp4/mov/png/tiff outputs).",
)
@click.option("--seed", default=0, show_default=True)
@click.option("--print-config", is_flag=True, help="Print the merged configuration and exit.")
@click.option(
    "--json-progress",
    is_flag=True,
    help="One JSON progress line per second on stdout (no bars).",
)
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option(
    "--require-all",
    is_flag=True,
    help="Exit 6 when a swapped track's face went unswapped in any written frame.",
)
@overwrite_options
@config_options()
def swap(
    preset: str, print_config: bool, overwrite: bool | None, require_all: bool, **params
) -> None:
    """Swap the --source face into every selected face of a video (--map: several actors)."""
    cfg = merged_config(preset, params, checkpoint_settings(params["checkpoint"]))
    if print_config:
        click.echo(config_to_toml(cfg), nl=False)
        return
    check_map(cfg.track.map)
    # with a map, --source is optional: the face for the tracks the map leaves
    source = params["source"]
    if source is not None or not cfg.track.map:
        source = require_input(source, "--source (or --map)")
    input_path = require_input(params["input_path"], "--in")
    if not params["output"]:
        raise click.UsageError("--out is required")
    if cfg.track.target_face:
        require_input(cfg.track.target_face, "--target-face")
    check_paths(
        params["output"],
        overwrite,
        input_path,
        params["checkpoint"],
        *map_files(cfg.track.map),
        source=source,
        face_backend=cfg.detect.face_backend,
    )
    check_handoffs(cfg, overwrite)
    if params["sign"]:
        c2pa_module()
    masks = load_mask_models(cfg, params["device"])

    # deferred: the models and the pipeline import torch, which the checks above do without
    from mmvideo.generate import load_models
    from mmvideo.pipeline import format_ranges, run_swap

    models = load_models(params["checkpoint"], params["device"])
    start, stop = params["start"], params["stop"]
    if params["frames"]:
        info = probe_media(input_path, fill_missing=params["fill_missing"])
        start, stop = frame_range(params["frames"], info)
    sign = params["sign"] or (None, None)
    job = SwapJob(
        source=source,
        input=input_path,
        output=params["output"],
        preset=preset,
        checkpoint=params["checkpoint"],
        checkpoint_sha256=models.sha256,
        start=start,
        stop=stop,
        warmup=params["warmup"],
        lookahead=params["lookahead"],
        device=params["device"],
        batch_size=cfg.generate.batch_size,
        seed=params["seed"],
        timecode=params["timecode"],
        fill_missing=params["fill_missing"],
        watermark=params["watermark"],
        sign_cert=sign[0],
        sign_key=sign[1],
    )
    log.info("job: %s", job.to_json())
    json_progress = params["json_progress"]
    progress = Progress(
        bars=not (json_progress or params["no_progress"]),
        json_sink=click.echo if json_progress else None,
    )
    summary = run_swap(job, cfg, models, progress=progress, masks=masks)
    if json_progress:
        click.echo(json.dumps({"summary": asdict(summary)}))
    else:
        for line in summary.lines():
            click.echo(line)
    if require_all and summary.missed():
        frames = sum(r["last"] - r["first"] + 1 for v in summary.missed().values() for r in v)
        raise UnswappedFaces(
            f"{params['output']}: {frames} frames of swapped tracks not swapped "
            f"({format_ranges(summary.missed())}) (--require-all)"
        )


@click.command("tracks")
@click.argument("clip", type=click.Path())
@click.option(
    "--sheet",
    default=None,
    help="Contact sheet PNG of each track's best face (default: CLIP.tracks.png).",
)
@click.option("--preset", default=DEFAULT_PRESET, show_default=True)
@click.option(
    "--checkpoint",
    default=None,
    help="Identity encoder source; use the one you will swap with, so ids match.",
)
@click.option("--device", default="cpu", show_default=True)
@overwrite_options
@config_options(FACE_SECTIONS, without=SOURCE_KEYS + TARGET_KEYS)  # no source, every track
def tracks(
    clip: str,
    sheet: str | None,
    preset: str,
    checkpoint: str | None,
    device: str,
    overwrite: bool | None,
    **params,
) -> None:
    """List the face tracks of CLIP (ids for `swap --track-id` and `--map`) and write a contact
    sheet."""
    cfg = merged_config(preset, params)
    require_input(clip, "CLIP")
    out = Path(sheet) if sheet else Path(clip).with_suffix(".tracks.png")
    check_paths(out, overwrite, clip, checkpoint, face_backend=cfg.detect.face_backend)
    # deferred: the models and the pipeline import torch, which the checks above do without
    from mmvideo.generate import load_models
    from mmvideo.pipeline import analyze, face_config

    models = load_models(checkpoint, device)
    info = probe_media(clip)
    analysis = analyze(clip, info, cfg, FaceAnalyzer(face_config(cfg.detect, device)), models)
    for t in analysis.tracks:
        side = int(np.sqrt(t.median_area()))
        click.echo(
            f"track {t.id}: frames {t.first}-{t.last}, {len(t.faces)} faces "
            f"({len(t.detected)} detected), ~{side} px, shot {t.shot}"
        )
    if not analysis.tracks:
        click.echo("no faces found")
        return
    write_contact_sheet(out, analysis.thumbnails)
    click.echo(f"contact sheet: {out}")


def write_contact_sheet(path: Path, thumbnails: dict[int, np.ndarray], columns: int = 6) -> None:
    """A grid of thumbnails labelled with their track ids, written atomically as PNG."""
    ids = sorted(thumbnails)
    side = next(iter(thumbnails.values())).shape[0]
    rows = (len(ids) + columns - 1) // columns
    cols = min(columns, len(ids))
    sheet = np.zeros((rows * side, cols * side, 3), np.uint8)
    for k, tid in enumerate(ids):
        r, c = divmod(k, columns)
        tile = np.ascontiguousarray(thumbnails[tid][..., ::-1])  # RGB -> BGR for OpenCV
        cv2.putText(tile, str(tid), (4, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 255, 255), 2)
        sheet[r * side : (r + 1) * side, c * side : (c + 1) * side] = tile
    with atomic_output(path, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), sheet):
            raise OutputError(f"{path}: cannot write the contact sheet")
