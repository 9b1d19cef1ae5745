"""``mmvideo models``: describe a config or checkpoint, export the generator to ONNX."""

from __future__ import annotations

import json
from pathlib import Path

import click

from magicmask.checkpoint import load_checkpoint
from magicmask.config import list_configs
from magicmask.export import check_onnx, export_onnx
from magicmask.model.generator import MagicMaskGenerator, create_generator
from magicmask.model.summary import generator_summary
from mmcore.atomic import check_output
from mmcore.errors import ModelError
from mmvideo.commands.options import overwrite_options
from mmvideo.tune import describe_record


def _resolve(spec: str) -> tuple[MagicMaskGenerator, str]:
    """A registered config name or a checkpoint path → (generator, description)."""
    if spec in list_configs():
        return create_generator(spec).eval(), f"config {spec} (random weights)"
    path = Path(spec)
    if path.suffix in (".pt", ".pth") or path.exists():
        ckpt = load_checkpoint(path)
        return ckpt.generator, (
            f"checkpoint {path} (config {ckpt.config.name}, identity encoder {ckpt.identity_encoder}, "
            f"sha256 {ckpt.sha256[:16]}...)"
        )
    raise ModelError(
        f"{spec}: neither a registered config ({', '.join(list_configs())}) nor a checkpoint file"
    )


@click.group("models")
def models() -> None:
    """Inspect and export MagicMask generators."""


@models.command("describe")
@click.argument("spec", default="tiny")
@click.option("--depth", default=2, show_default=True, help="Module nesting depth to list.")
def describe(spec: str, depth: int) -> None:
    """Parameters and GMACs per module of a config name or checkpoint (SPEC, default tiny)."""
    generator, what = _resolve(spec)
    click.echo(what)
    if spec not in list_configs():
        meta = load_checkpoint(Path(spec)).meta
        for line in describe_record(meta):
            click.echo(line)
        if meta.get("swap"):
            click.echo(
                f"swap settings (a flag overrides them): {json.dumps(meta['swap'], sort_keys=True)}"
            )
    cfg = generator.cfg
    click.echo(
        f"identity_dim {cfg.identity_dim}, latent {cfg.latent_channels}x{cfg.latent_size}x{cfg.latent_size}, "
        f"geometric {'on' if cfg.use_geometric else 'off'}, adversarial {cfg.adversarial}"
    )
    click.echo(f"{'module':<40} {'params':>12} {'GMACs/face':>11}")
    for row in generator_summary(generator, depth):
        name = "  " * row.depth + row.name
        click.echo(f"{name:<40} {row.params:>12,} {row.gmacs:>11.3f}")


@models.command("list")
def list_cmd() -> None:
    """Registered config names."""
    for name in list_configs():
        click.echo(name)


@models.command("export-onnx")
@click.argument("spec")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--opset", default=17, show_default=True)
@click.option(
    "--check/--no-check",
    default=True,
    show_default=True,
    help="Compare with onnxruntime.",
)
@overwrite_options
def export_onnx_cmd(spec: str, out: Path, opset: int, check: bool, overwrite: bool | None) -> None:
    """Export the generator of SPEC (config name or checkpoint) to OUT as ONNX (dynamic batch)."""
    check_output(out, spec, overwrite=overwrite)  # before the checkpoint loads
    generator, what = _resolve(spec)
    export_onnx(generator, out, opset)
    click.echo(f"wrote {out} from {what}")
    if check:
        diff = check_onnx(generator, out)
        if diff > 1e-3:
            raise ModelError(f"{out}: onnxruntime output differs from torch by {diff:.2e} (> 1e-3)")
        click.echo(f"onnxruntime matches torch: max abs diff {diff:.2e}")
