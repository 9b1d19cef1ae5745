"""``mmvideo tune``: fine-tune a checkpoint on one shot (the work is ``mmvideo.tune``'s)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from magicmask import checkpoint
from magicmask.face.identity import build_identity_encoder
from magicmask.losses import IDENTITY_AUGMENT_MAX, LossConfig
from mmcore.atomic import check_output
from mmcore.errors import InvalidInput, MissingInput, OutputError
from mmvideo.commands.options import (
    FACE_SECTIONS,
    config_options,
    merged_config,
    overwrite_options,
)
from mmvideo.commands.swap import check_paths
from mmvideo.config import DEFAULT_PRESET, ModelSettings
from mmvideo.io.sequence import oiio_module
from mmvideo.preview import PREVIEW_USERS
from mmvideo.tune import (
    DEFAULT_STEPS,
    SWAP_SETTINGS,
    TuneProgress,
    TuneSettings,
    check_base,
    export,
    first_source_crop,
    open_run,
    source_files,
    state_folder,
    train,
    train_config,
    write_preview,
)
from train.config import TrainConfig
from train.trainer import (
    latest_checkpoint,
)


@click.command("tune")
@click.option("--source", "sources", multiple=True, help="Photo of the actor; repeatable.")
@click.option("--source-dir", default=None, help="Folder of photos of the actor.")
@click.option(
    "--source-video", default=None, help="Footage of the actor (every --source-stride-th frame)."
)
@click.option("--in", "clips", multiple=True, help="Target clip (the shot); repeatable.")
@click.option(
    "--out",
    "output",
    required=True,
    type=click.Path(path_type=Path),
    help="Tuned checkpoint (.pt).",
)
@click.option(
    "--minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help=f"Training time budget (default: {DEFAULT_STEPS} steps, no time budget).",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    help=f"Train this many steps instead of --minutes (default {DEFAULT_STEPS}).",
)
@click.option(
    "--checkpoint", "base", default=None, help="Base checkpoint (default: the embedded one)."
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the tune in OUT.tune/ from its latest state checkpoint.",
)
@click.option(
    "--preset",
    default=DEFAULT_PRESET,
    show_default=True,
    help="Swap preset whose face/target settings are used.",
)
@click.option("--lr", default=TuneSettings.lr, show_default=True)
@click.option(
    "--pairs",
    "pairs",
    default=TuneSettings.batch_size,
    show_default=True,
    help="Pairs per training step.",
)
@click.option(
    "--lambda-id",
    default=TuneSettings.lambda_id,
    show_default=True,
    help="Weight of the identity loss (eq. 7's λ_IS).",
)
@click.option(
    "--lambda-afsa",
    default=TuneSettings.lambda_afsa,
    show_default=True,
    help="Weight of the adversarial (AFSA) terms (eq. 12's λ_AFSA).",
)
@click.option(
    "--identity-augment",
    type=click.FloatRange(0, IDENTITY_AUGMENT_MAX),
    default=TuneSettings.identity_augment,
    show_default=True,
    help=LossConfig.__dataclass_fields__["identity_augment"].metadata["help"],
)
@click.option(
    "--mask-forehead",
    "train_mask_forehead",
    type=click.FloatRange(0, 1),
    default=TuneSettings.mask_forehead,
    show_default=True,
    help="Forehead reach of the training face mask (eq. 8's m_t).",
)
@click.option("--lambda-perceptual", default=TuneSettings.lambda_perceptual, show_default=True)
@click.option(
    "--lambda-feature-match", default=TuneSettings.lambda_feature_match, show_default=True
)
@click.option(
    "--lambda-texture",
    type=click.FloatRange(min=0),
    default=TuneSettings.lambda_texture,
    show_default=True,
    help=TrainConfig.__dataclass_fields__["lambda_texture"].metadata["help"],
)
@click.option(
    "--detail-path/--no-detail-path",
    default=TuneSettings.detail_path,
    show_default=True,
    help="Add the [ours] target detail path to the decoder (if the base lacks it).",
)
@click.option(
    "--freeze",
    default=",".join(TuneSettings.freeze),
    show_default=True,
    help="Generator modules not trained (comma-separated: visual, geometric, decoder, ...).",
)
@click.option(
    "--max-frames",
    default=TuneSettings.max_frames,
    show_default=True,
    help="Target frames used per clip.",
)
@click.option("--min-frames", default=8, show_default=True, help="Fewest usable target faces.")
@click.option("--source-stride", default=TuneSettings.source_stride, show_default=True)
@click.option(
    "--checkpoint-every",
    default=TuneSettings.checkpoint_every,
    show_default=True,
    help="State checkpoint every N steps.",
)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--train-threads",
    "train_threads",
    default=1,
    show_default=True,
    help="torch CPU threads for training.",
)
@click.option(
    "--preview-every",
    type=float,
    default=None,
    help="Write OUT.preview.png every MIN minutes of training.",
)
@click.option(
    "--json-progress", is_flag=True, help="One JSON progress line per second on stdout (no bar)."
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@overwrite_options
# the faces it trains on are swap's (--map is refused below with the reason); the preview
# sheet renders with the preset's generate and compose settings and the tuned checkpoint's swap
# settings
@config_options(FACE_SECTIONS)
def tune_command(sources, source_dir, source_video, clips, output: Path, minutes, steps, base, resume, preset, lr,
                 pairs, lambda_id, lambda_afsa, identity_augment, train_mask_forehead, lambda_perceptual, lambda_feature_match, lambda_texture, detail_path, freeze, max_frames, min_frames, source_stride,
                 checkpoint_every, seed, train_threads, preview_every, json_progress, no_progress, overwrite,
                 **params) -> None:  # fmt: skip
    """Fine-tune a checkpoint on one shot: the actor's photos (or footage) and the target clips."""
    cfg = merged_config(preset, params, ModelSettings("mmvideo tune", SWAP_SETTINGS))
    if steps is not None and minutes is not None:
        raise click.UsageError("give --minutes or --steps, not both")
    if not clips:
        raise click.UsageError("--in is required")
    if cfg.track.map:
        raise click.UsageError(
            "--map: a tune learns one actor; choose the target face with --target-face or --track-id"
        )
    if not (sources or source_dir or source_video):
        raise click.UsageError("--source, --source-dir or --source-video is required")
    if steps is None and minutes is None:
        steps = DEFAULT_STEPS
    seconds = None if steps is not None else 60.0 * minutes
    for clip in clips:
        if not Path(clip).is_file():
            raise MissingInput(f"{clip}: file not found (--in)")
    if source_video and not Path(source_video).is_file():
        raise MissingInput(f"{source_video}: file not found (--source-video)")
    files = source_files(sources, source_dir)
    if cfg.track.target_face and not Path(cfg.track.target_face).is_file():
        raise MissingInput(f"{cfg.track.target_face}: file not found (--target-face)")
    base_path = Path(base) if base else checkpoint.default_checkpoint_path()
    # every output before any work: the checkpoint, its state folder, the preview sheet
    check_paths(
        output,
        overwrite,
        *clips,
        base_path,
        *files,
        source_video,
        face_backend=cfg.detect.face_backend,
    )
    run = state_folder(output)
    preview_path = output.with_name(output.name + ".preview.png")
    if preview_every is not None:
        oiio_module(PREVIEW_USERS)
        check_output(preview_path, overwrite=True)
    settings = TuneSettings(
        lr=lr,
        batch_size=pairs,
        seed=seed,
        lambda_perceptual=lambda_perceptual,
        lambda_feature_match=lambda_feature_match,
        lambda_texture=lambda_texture,
        detail_path=detail_path,
        freeze=tuple(f for f in freeze.split(",") if f),
        max_frames=max_frames,
        source_stride=source_stride,
        checkpoint_every=checkpoint_every,
        lambda_id=lambda_id,
        lambda_afsa=lambda_afsa,
        identity_augment=identity_augment,
        mask_forehead=train_mask_forehead,
    )
    if resume:
        if latest_checkpoint(run) is None:
            raise InvalidInput(f"{run}: nothing to resume (no state checkpoints)")
    elif run.exists():
        raise OutputError(
            f"{run}: a tune is already there (pass --resume to continue it, or remove the folder)"
        )
    base_ckpt = check_base(base_path)
    tcfg = train_config(settings, base_ckpt.config, base_path, steps or 10**9)
    faces, record = open_run(
        run,
        clips,
        files,
        source_video,
        cfg,
        settings,
        base_path,
        base_ckpt.sha256,
        resume,
        min_frames,
    )
    click.echo(
        f"faces: {record['target_faces']} target, {record['source_faces']} source "
        f"(prepared in {record['data_seconds']:.0f} s)",
        err=True,
    )
    progress = TuneProgress(steps, seconds, click.echo if json_progress else None, not no_progress)
    preview_state = {"next": preview_every * 60.0 if preview_every else None}
    encoder = build_identity_encoder("dlib-resnet") if preview_every else None
    source_crop = first_source_crop(run) if preview_every else None

    def on_step(step, elapsed, losses, models):
        progress.update(step, elapsed, losses)
        if preview_state["next"] is not None and elapsed >= preview_state["next"]:
            preview_state["next"] += preview_every * 60.0
            write_preview(preview_path, faces.previews, models, encoder, source_crop, cfg,
                          f"{output.name}: step {step}, {elapsed / 60:.1f} min")  # fmt: skip

    try:
        result, models = train(
            run,
            tcfg,
            base_path,
            resume,
            steps,
            seconds,
            settings,
            on_step,
            train_threads,
            progress.start,
        )
    finally:
        progress.close()
    record.update(steps=result.steps, minutes=result.seconds / 60.0)
    sha = export(output, models, record)
    if json_progress:
        click.echo(json.dumps({"summary": {"out": str(output), "sha256": sha, "steps": result.steps,
                                           "minutes": round(result.seconds / 60, 2), "losses": result.last_losses}}))  # fmt: skip
    else:
        click.echo(
            f"{output}: {result.steps} steps in {result.seconds / 60:.1f} min of training (sha256 {sha[:16]}...)"
        )
