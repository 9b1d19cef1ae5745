"""``mmvideo train-preprocess``, ``train-fit``, ``train-export`` and ``train-evaluate``: the
command-line edge of the training package (``train/``), which knows nothing of click.

Under torchrun the module is ``mmvideo``: ``torchrun --nproc_per_node 8 -m mmvideo train-fit ...``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import torch

import train.fit
from magicmask.losses import LossConfig
from mmcore.config_keys import dataclass_keys
from mmvideo.commands.options import given_keys, key_options, overwrite_options
from train.config import ModelSwitches, TrainConfig
from train.evaluate import markdown_table, run_evaluation
from train.fit import EXPORT_DTYPES, Runtime
from train.preprocess import PreprocessConfig, preprocess


@click.command("train-preprocess")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder for the shards.",
)
@click.option("--image-size", default=224, show_default=True, help="Target crop side.")
@click.option("--detector", type=click.Choice(["hog", "cnn"]), default="hog", show_default=True)
@click.option(
    "--detect-upsample",
    default=1,
    show_default=True,
    help="Detector upsampling (finds smaller faces).",
)
@click.option("--stride", default=5, show_default=True, help="Keep every N-th video frame.")
@click.option(
    "--max-frames",
    default=0,
    show_default=True,
    help="Frames kept per video (0 = all).",
)
@click.option(
    "--min-face-size",
    default=48,
    show_default=True,
    help="Smallest usable face side in pixels.",
)
@click.option("--chunk-size", default=200, show_default=True, help="Images per shard.")
@click.option("--workers", default=max(1, min(4, (os.cpu_count() or 2) - 1)), show_default=True)
@click.option(
    "--min-per-identity",
    default=1,
    show_default=True,
    help="Drop image identities with fewer images.",
)
@click.option(
    "--max-per-identity",
    default=0,
    show_default=True,
    help="Images kept per identity (0 = all).",
)
@click.option(
    "--limit",
    default=0,
    show_default=True,
    help="Images kept in all (0 = all; stable pseudo-random pick).",
)
@click.option(
    "--exclude",
    multiple=True,
    help="Identity to leave out (held out for evaluation); repeatable.",
)
def preprocess_command(sources, out, image_size, detector, detect_upsample, stride, max_frames, min_face_size, chunk_size, workers,
         min_per_identity, max_per_identity, limit, exclude) -> None:  # fmt: skip
    """Detect, align and analyse faces in SOURCES and write training shards to --out."""
    cfg = PreprocessConfig(image_size, detector, detect_upsample, stride, max_frames, min_face_size)
    report = preprocess(
        list(sources), out, cfg, chunk_size, workers,
        min_per_identity=min_per_identity, max_per_identity=max_per_identity, limit=limit, exclude=set(exclude),
    )  # fmt: skip
    click.echo(
        f"{out}: {report.chunks_total} shards ({report.chunks_done_before} already done); "
        f"this run: {report.faces} faces written, {report.skipped} images/frames skipped (no usable face)"
    )


@click.command("train-export")
@click.argument("state", type=click.Path(path_type=Path))
@click.option(
    "--to", "out", required=True, type=click.Path(path_type=Path), help="Checkpoint file to write."
)
@click.option(
    "--export-dtype",
    type=click.Choice(EXPORT_DTYPES),
    default="float16",
    show_default=True,
)
@click.option(
    "--weights",
    type=click.Choice(["ema", "generator"]),
    default="ema",
    show_default=True,
    help="The EMA of the generator's weights, or the raw weights of the last step.",
)
@click.option(
    "--gate-data",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Held-out stills with pairs.csv: refuse a model worse than the embedded one on realism or "
    "identity (train.gate). Required when --to is the embedded checkpoint.",
)
@overwrite_options
def export_command(
    state: Path,
    out: Path,
    export_dtype: str,
    weights: str,
    gate_data: Path | None,
    overwrite: bool | None,
) -> None:
    """Write the generator of a training checkpoint (checkpoints/step-*.pt) as a model file."""
    measured = train.fit.export_checkpoint(state, out, export_dtype, weights, gate_data, overwrite)
    for name, (new, old) in measured.items():
        click.echo(f"gate: {name} {new:.3f} (embedded {old:.3f})")
    click.echo(f"{out}: exported from {state}")


TRAIN_KEYS = dataclass_keys("train", TrainConfig)
SWITCH_KEYS = dataclass_keys("model", ModelSwitches)
LOSS_KEYS = dataclass_keys("loss", LossConfig)
RUNTIME_KEYS = dataclass_keys("runtime", Runtime)


@click.command("train-fit")
@click.option(
    "--data",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder of shards from train.preprocess.",
)
@click.option("--out", "run", required=True, type=click.Path(path_type=Path), help="Run folder.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --out from its latest checkpoint.",
)
@key_options(TRAIN_KEYS + SWITCH_KEYS + LOSS_KEYS)
@click.option(
    "--device",
    default="cuda" if torch.cuda.is_available() else "cpu",
    show_default=True,
)
@key_options(RUNTIME_KEYS)
def fit_command(data: Path, run: Path, resume: bool, device: str, **params) -> None:
    """Train MagicMask (generator + discriminators, eq. 7-12) on preprocessed shards."""
    tcfg = TrainConfig(
        **given_keys(TRAIN_KEYS, params),
        model_overrides=ModelSwitches(**given_keys(SWITCH_KEYS, params)).overrides(),
        loss=LossConfig(**given_keys(LOSS_KEYS, params)),
    )
    rt = Runtime(device, **given_keys(RUNTIME_KEYS, params))
    report = train.fit.fit(tcfg, data, run, resume, rt)
    if int(os.environ.get("RANK", "0")) == 0:
        per = report.seconds / max(1, report.end_step - report.start_step)
        click.echo(
            f"{run}: steps {report.start_step}->{report.end_step} in {report.seconds:.0f} s "
            f"({per:.2f} s/step, data {report.data_seconds:.0f} s); exported {report.exported}"
        )


@click.command("train-evaluate")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path))
@click.option("--pairs", "pairs_csv", required=True, type=click.Path(path_type=Path),
              help="CSV of source,target (or file_a,file_b,same) image names.")  # fmt: skip
@click.option(
    "--images",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder of the images (and identities.csv).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder for eval.json and eval.md.",
)
@click.option(
    "--judge", default="facenet-vggface2", show_default=True, help="Independent identity encoder."
)
@click.option(
    "--judge-weights",
    default="",
    help="Weights file of the judge encoder (arcface-onnx needs one).",
)
@click.option(
    "--train-weights",
    default="",
    help="Weights file of the checkpoint's own encoder, if not packaged.",
)
@click.option(
    "--max-pairs", default=100, show_default=True, help="Evaluate a fixed random subset (0 = all)."
)
@click.option(
    "--clip",
    "clips",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Clip for temporal jitter; repeatable.",
)
@click.option("--clip-frames", default=24, show_default=True)
def evaluate_command(
    checkpoint,
    pairs_csv,
    images,
    out,
    judge,
    judge_weights,
    train_weights,
    max_pairs,
    clips,
    clip_frames,
) -> None:
    """Evaluate a MagicMask checkpoint on held-out pairs (and clips)."""
    torch.set_num_threads(1)
    rows = run_evaluation(
        checkpoint,
        pairs_csv,
        images,
        out,
        judge,
        max_pairs,
        list(clips),
        clip_frames,
        train_weights,
        judge_weights,
    )
    loaded_train = json.loads((out / "eval.json").read_text())["train_encoder"]
    click.echo(markdown_table(rows, loaded_train, judge))
