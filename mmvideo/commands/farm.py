"""Click commands of render-farm mode: plan, run-chunk, merge, batch."""

from __future__ import annotations

from pathlib import Path

import click

from mmcore.atomic import check_output
from mmcore.errors import InvalidInput, MMVideoError
from mmvideo.commands.options import config_options, overwrite_options
from mmvideo.commands.swap import UnswappedFaces, check_handoffs, check_map, load_mask_models
from mmvideo.config import config_keys, load_config
from mmvideo.farm.batch import BatchFailed, format_summary, run_batch
from mmvideo.farm.chunk import chunk_is_done, read_status, run_chunk
from mmvideo.farm.executors import Task, make_executor
from mmvideo.farm.merge import merge, merged_is_current
from mmvideo.farm.plan import load_plan, make_plan, save_plan
from mmvideo.farm.swap import resolve_settings


class ChunksFailed(MMVideoError):
    """Some chunks of a job failed (the others were finished)."""


def require_all_option(fn):
    return click.option(
        "--require-all",
        is_flag=True,
        help="Exit 6 (as swap --require-all) when a chunk left a swapped track's face "
        "unswapped in a written frame; the chunks and the merge are kept.",
    )(fn)


def check_all_swapped(job_path: Path, indices: list[int]) -> None:
    """``--require-all``: refuse (exit 6) when the status of any of these chunks records
    written frames of swapped tracks that were not swapped; the error names them."""
    missed = {}
    for i in indices:
        status = read_status(job_path, i)
        if status is not None and status.unswapped:
            missed[i] = {int(track): ranges for track, ranges in status.unswapped.items()}
    if missed:
        frames, where = describe_unswapped(missed)
        raise UnswappedFaces(
            f"{job_path}: {frames} frames of swapped tracks not swapped ({where}) (--require-all)"
        )


def describe_unswapped(missed: dict[int, dict[int, list[dict]]]) -> tuple[int, str]:
    """Chunk -> track -> unswapped ranges as (frames, "chunk 1: track 1: 9-10 no detection")."""
    from mmvideo.pipeline import format_ranges  # deferred: the pipeline imports torch

    frames = sum(r["last"] - r["first"] + 1 for m in missed.values() for v in m.values() for r in v)
    return frames, "; ".join(f"chunk {i}: {format_ranges(m)}" for i, m in sorted(missed.items()))


def executor_options(fn):
    fn = click.option(
        "--gpus-per-task",
        type=float,
        default=None,
        help="GPUs per Ray task of a CUDA job (default: 1 where the cluster has GPUs, else 0).",
    )(fn)
    fn = click.option(
        "--ray-address",
        default=None,
        help="Ray cluster to join (e.g. auto, ray://head:10001); default: start a local Ray.",
    )(fn)
    fn = click.option(
        "--workers",
        type=int,
        default=None,
        help="Local executor: parallel processes (default: one per core).",
    )(fn)
    fn = click.option(
        "--executor",
        type=click.Choice(["local", "ray"]),
        default="local",
        show_default=True,
        help="Where chunks run.",
    )(fn)
    return fn


@click.command("plan")
@click.option(
    "--in",
    "input_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Clip to swap.",
)
@click.option(
    "--source",
    default=None,
    type=click.Path(path_type=Path),
    help="Image of the actor to insert (with --map: into the tracks it leaves).",
)
@click.option(
    "--out",
    "job_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Job plan to write (job.json).",
)
@click.option(
    "--chunks",
    type=int,
    default=None,
    help="Split into N chunks of about equal length.",
)
@click.option("--chunk-seconds", type=float, default=None, help="Split into chunks of S seconds.")
@click.option("--preset", default="balanced", show_default=True, help="Preset name or .toml file.")
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    default=None,
    help="Model checkpoint (default: the bundled one).",
)
@click.option(
    "--warmup",
    "warmup_seconds",
    type=float,
    default=None,
    help="Seconds analyzed before each chunk (default: as many frames as the preset's "
    "smoothing filters need to settle).",
)
@click.option(
    "--align",
    type=int,
    default=None,
    help="Cut only on multiples of N frames (default: the generator batch size, with the "
    "codec's fixed GOP if any: what a merge identical to a single run needs).",
)
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    help="Device the nodes run on (cpu, cuda, cuda:1).",
)
@overwrite_options
@config_options()
def plan_command(
    input_path,
    source,
    job_path,
    chunks,
    chunk_seconds,
    preset,
    checkpoint,
    warmup_seconds,
    align,
    device,
    overwrite,
    **params,
):
    """Split a clip into chunks and write the job plan every farm node reads."""
    if chunks is not None and chunk_seconds is not None:
        raise InvalidInput("give --chunks or --chunk-seconds, not both")
    check_output(job_path, input_path, source, checkpoint, overwrite=overwrite)
    if chunks is None and chunk_seconds is None:
        chunks = 1
    # the same --key flags as `mmvideo swap`, each overriding the preset
    overrides = {k.name: params.pop(k.name) for k in config_keys()}
    # a bad --map is refused before the checkpoint loads
    cfg = load_config(preset, overrides)
    check_map(cfg.track.map)
    check_handoffs(cfg, overwrite)
    # the mask's model files (nodes read them from the same paths) before the checkpoint loads
    load_mask_models(cfg)
    settings = resolve_settings(preset, checkpoint, overrides, device)
    plan = make_plan(
        job_path,
        input_path,
        source,
        settings,
        chunks=chunks,
        chunk_seconds=chunk_seconds,
        warmup_seconds=warmup_seconds,
        align=align,
    )
    save_plan(plan, job_path)
    click.echo(
        f"{job_path}: {plan.frames} frames in {len(plan.chunks)} chunks "
        f"(warm-up {plan.warmup} frames, look-ahead {plan.lookahead})"
    )
    for span in plan.chunks:
        click.echo(
            f"  chunk {span.index}: frames {span.start}-{span.end - 1} (analyzed from {span.decode_start})"
        )
    for t in plan.targets or ():
        # decided once over the whole clip; every chunk swaps these
        click.echo(f"  swaps track {t.track} ({len(t.boxes)} frames) with {t.source}")


@click.command("run-chunk")
@click.argument("job_path", type=click.Path(path_type=Path))
@click.option(
    "--index",
    "indices",
    type=int,
    multiple=True,
    help="Chunk to run (repeatable); default: every unfinished chunk.",
)
@click.option("--force", is_flag=True, help="Rerun even if the chunk is already finished (as -y).")
@require_all_option
@overwrite_options
@executor_options
def run_chunk_command(
    job_path, indices, force, require_all, overwrite, executor, workers, ray_address, gpus_per_task
):
    """Run chunks of a job plan; finished chunks are skipped, partial ones redone.

    Chunk files are the job's own, inside its parts folder: without -y a finished chunk is kept
    (that is the resume), an unfinished one is redone; -y replaces finished chunks too."""
    if force and overwrite is False:
        raise click.UsageError("--force and -n/--no-overwrite contradict each other")
    force = force or bool(overwrite)
    if len(indices) == 1 and executor == "local":
        # The farm-manager case: one chunk per call, run in this process.
        result = run_chunk(job_path, indices[0], force=force)
        click.echo(
            f"chunk {result.index}: {'already done' if result.skipped else f'{result.frames} frames in {result.seconds:.1f} s'}"
        )
        if require_all:
            check_all_swapped(job_path, [result.index])
        return
    plan = load_plan(job_path)
    chosen = indices or [
        s.index for s in plan.chunks if force or not chunk_is_done(plan, job_path, s.index)
    ]
    tasks = [
        Task(
            run_chunk,
            (str(Path(job_path).resolve()), i, force),
            f"chunk {i}",
            plan.chunks[i].frames,
            gpu=plan.settings.device.startswith("cuda"),
        )
        for i in chosen
        if 0 <= i < len(plan.chunks)
    ]
    if len(tasks) != len(chosen):
        raise InvalidInput(f"{job_path}: the plan has chunks 0-{len(plan.chunks) - 1}")
    runner = make_executor(
        executor, workers=workers, ray_address=ray_address, gpus_per_task=gpus_per_task
    )
    outcomes = runner.run(tasks)
    for outcome in outcomes:
        click.echo(f"{outcome.label}: {'ok' if outcome.ok else 'FAILED: ' + str(outcome.error)}")
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise ChunksFailed(f"{job_path}: {len(failed)} of {len(outcomes)} chunks failed")
    if require_all:
        check_all_swapped(job_path, list(chosen))


@click.command("merge")
@click.argument("job_path", type=click.Path(path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Merged video to write.",
)
@require_all_option
@overwrite_options
def merge_command(job_path, out, require_all, overwrite):
    """Concatenate a job's chunks without re-encoding and add the source's audio.

    An output that is already the merge of the current chunks is kept (a requeued merge task
    succeeds); any other existing output is replaced only with -y."""
    if (
        overwrite is not True
        and Path(out).exists()
        and merged_is_current(load_plan(job_path), job_path, out)
    ):
        click.echo(f"{Path(out).resolve()}: already merged from the current chunks")
    else:
        record = merge(job_path, out, overwrite=overwrite)
        click.echo(f"{record.output}: {record.frames} frames, merged in {record.seconds:.1f} s")
    if require_all:
        check_all_swapped(job_path, list(range(len(load_plan(job_path).chunks))))


@click.command("batch")
@click.argument("batch_file", type=click.Path(path_type=Path))
@click.option(
    "--require-all",
    is_flag=True,
    help="Exit 6 (as swap --require-all) when a merged clip left a swapped track's face "
    "unswapped in a written frame; the outputs are kept. A failed clip still exits 1.",
)
@overwrite_options
@executor_options
def batch_command(
    batch_file, require_all, overwrite, executor, workers, ray_address, gpus_per_task
):
    """Swap many clips listed in a TOML file, then print a summary table.

    A clip whose output is already its current merge is skipped; any other existing output
    fails that clip (before its chunks run) unless -y."""
    runner = make_executor(
        executor, workers=workers, ray_address=ray_address, gpus_per_task=gpus_per_task
    )
    outcomes = run_batch(batch_file, runner, overwrite=overwrite)
    click.echo(format_summary(outcomes))
    failed = [o.name for o in outcomes if o.state == "failed"]
    if failed:
        raise BatchFailed(
            f"{batch_file}: {len(failed)} of {len(outcomes)} clips failed: {', '.join(failed)}"
        )
    missed = {o.name: describe_unswapped(o.unswapped) for o in outcomes if o.unswapped}
    if require_all and missed:
        frames = sum(n for n, _ in missed.values())
        where = "; ".join(f"{name}: {text}" for name, (_, text) in missed.items())
        raise UnswappedFaces(
            f"{batch_file}: {frames} frames of swapped tracks not swapped ({where}) (--require-all)"
        )
