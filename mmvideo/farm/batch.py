"""Many clips in one command, from a TOML file; one broken clip never stops the others.

Every clip becomes a job plan in the batch's work folder, all their chunks go to one executor
(so clips run side by side on a pool or a Ray cluster), and each clip whose chunks all finished
is merged. Rerunning skips merged clips and finished chunks. See ``docs/farm.md`` for the format.
"""

from __future__ import annotations

import logging
import time
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mmcore.atomic import check_output
from mmcore.errors import InvalidInput, MissingInput, MMVideoError
from mmvideo.farm.chunk import chunk_is_done, read_status, run_chunk
from mmvideo.farm.executors import Executor, Outcome, Task, one_line
from mmvideo.farm.merge import merge, merged_is_current
from mmvideo.farm.plan import JobPlan, load_plan, make_plan, save_plan
from mmvideo.farm.swap import resolve_settings

log = logging.getLogger(__name__)


class BatchFailed(MMVideoError):
    """At least one clip of a batch failed (the others were finished)."""


@dataclass(frozen=True)
class ClipSpec:
    """One ``[[clip]]`` of a batch file; relative paths are relative to that file."""

    input: str
    source: str
    output: str
    name: str = ""
    preset: str = "balanced"
    checkpoint: str | None = None
    chunks: int | None = None
    chunk_seconds: float | None = None
    warmup_seconds: float | None = None  # None: what the smoothing filters need
    device: str = "cpu"
    overrides: dict[str, Any] = field(default_factory=dict)  # config keys, as on the command line


@dataclass
class ClipOutcome:
    name: str
    state: str  # "done", "skipped" (already merged) or "failed"
    output: str
    frames: int = 0
    chunks: int = 0
    seconds: float = 0.0
    error: str | None = None
    # merged (done or skipped) clips: chunk index -> {track: [{first, last, reason}]}, the
    # written frames of swapped tracks its status records as unswapped (`--require-all`)
    unswapped: dict[int, dict[int, list[dict]]] = field(default_factory=dict)


_PATH_KEYS = ("input", "source", "output", "checkpoint")


def load_batch(path: str | Path) -> tuple[list[ClipSpec], Path]:
    """Parse a batch file into clip specs and the work folder for their job plans."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise MissingInput(f"{path}: batch file not found") from exc
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: not a readable TOML batch file: {exc}") from exc
    unknown = set(data) - {"defaults", "clip", "workdir"}
    if unknown:
        raise InvalidInput(
            f"{path}: unknown top-level keys {', '.join(sorted(unknown))} (expected workdir, [defaults], [[clip]])"
        )
    defaults = data.get("defaults", {})
    clips = data.get("clip", [])
    if not isinstance(clips, list) or not clips:
        raise InvalidInput(f"{path}: no [[clip]] entries")
    base = path.resolve().parent
    specs = [
        _clip_spec(
            {
                **defaults,
                **clip,
                "overrides": {
                    **defaults.get("overrides", {}),
                    **clip.get("overrides", {}),
                },
            },
            base,
            path,
            n,
        )
        for n, clip in enumerate(clips, 1)
    ]
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidInput(f"{path}: clip names must be unique, repeated: {', '.join(duplicates)}")
    workdir = base / data.get("workdir", f"{path.stem}.farm")
    return specs, workdir


def _clip_spec(values: dict[str, Any], base: Path, path: Path, number: int) -> ClipSpec:
    known = {f.name for f in fields(ClipSpec)}
    unknown = set(values) - known
    if unknown:
        raise InvalidInput(f"{path}: clip {number}: unknown keys {', '.join(sorted(unknown))}")
    missing = [k for k in ("input", "source", "output") if k not in values]
    if missing:
        raise InvalidInput(f"{path}: clip {number}: missing {', '.join(missing)}")
    values = {
        k: (str(base / v) if k in _PATH_KEYS and v is not None else v) for k, v in values.items()
    }
    values.setdefault("name", Path(values["input"]).stem)
    if values.get("chunks") is None and values.get("chunk_seconds") is None:
        values["chunks"] = 1
    try:
        return ClipSpec(**values)
    except TypeError as exc:
        raise InvalidInput(f"{path}: clip {number}: {exc}") from exc


@dataclass
class _Clip:
    spec: ClipSpec
    job: Path
    outcome: ClipOutcome
    plan: JobPlan | None = None


def run_batch(
    path: str | Path, executor: Executor, overwrite: bool | None = None
) -> list[ClipOutcome]:
    """Plan, run and merge every clip of the batch file; failures are recorded, not raised.

    A clip whose output exists and is not its current merge fails before its chunks run,
    unless ``overwrite`` is True (the command's -y)."""
    specs, workdir = load_batch(path)
    clips = [
        _Clip(s, workdir / f"{s.name}.json", ClipOutcome(s.name, "failed", s.output)) for s in specs
    ]
    for clip in clips:
        _plan_clip(clip, overwrite)
    tasks: list[Task] = []
    for clip in clips:
        if clip.plan is not None and clip.outcome.state != "skipped":
            tasks += [
                Task(
                    run_chunk,
                    (str(clip.job), s.index),
                    f"{clip.spec.name}#{s.index}",
                    s.frames,
                    gpu=clip.plan.settings.device.startswith("cuda"),
                )
                for s in clip.plan.chunks
                if not chunk_is_done(clip.plan, clip.job, s.index)
            ]
    results = dict(zip((t.label for t in tasks), executor.run(tasks, desc="batch"), strict=True))
    for clip in clips:
        if clip.plan is not None and clip.outcome.state != "skipped":
            _merge_clip(clip, results)
    return [c.outcome for c in clips]


def _plan_clip(clip: _Clip, overwrite: bool | None) -> None:
    spec, outcome = clip.spec, clip.outcome
    started = time.perf_counter()
    try:
        settings = resolve_settings(spec.preset, spec.checkpoint, spec.overrides, spec.device)
        plan = make_plan(
            clip.job,
            spec.input,
            spec.source,
            settings,
            chunks=spec.chunks,
            chunk_seconds=spec.chunk_seconds,
            warmup_seconds=spec.warmup_seconds,
            created=_planned_at(clip.job),
        )
        current = merged_is_current(plan, clip.job, spec.output)
        if not current:
            Path(spec.output).parent.mkdir(parents=True, exist_ok=True)  # as merge does
            check_output(spec.output, spec.input, spec.source, overwrite=overwrite)
        if not _same_plan(clip.job, plan):
            save_plan(plan, clip.job)
    except Exception as exc:  # noqa: BLE001 - one clip's failure must not stop the batch
        outcome.error = one_line(exc)
        log.error("%s: %s", spec.name, outcome.error)
        return
    finally:
        outcome.seconds += time.perf_counter() - started
    clip.plan = plan
    outcome.frames, outcome.chunks = plan.frames, len(plan.chunks)
    if current:
        outcome.state = "skipped"
        outcome.unswapped = _unswapped(clip)


def _planned_at(job: Path) -> str | None:
    # A rerun keeps the first plan's time, so an unchanged clip keeps an identical plan.
    try:
        return load_plan(job).created
    except MMVideoError:
        return None


def _same_plan(job: Path, plan: JobPlan) -> bool:
    # Leaving an unchanged plan untouched keeps nodes that are reading it undisturbed.
    try:
        return load_plan(job) == plan
    except MMVideoError:
        return False


def _merge_clip(clip: _Clip, results: dict[str, Outcome]) -> None:
    spec, outcome = clip.spec, clip.outcome
    mine = [r for label, r in results.items() if label.rpartition("#")[0] == spec.name]
    outcome.seconds += sum(r.seconds for r in mine)
    failed = [r for r in mine if not r.ok]
    if failed:
        outcome.error = f"chunk {failed[0].label.rpartition('#')[2]}: {failed[0].error}"
        return
    try:
        record = merge(clip.job, spec.output)
    except Exception as exc:  # noqa: BLE001 - one clip's failure must not stop the batch
        outcome.error = one_line(exc)
        return
    outcome.seconds += record.seconds
    outcome.state = "done"
    outcome.unswapped = _unswapped(clip)


def _unswapped(clip: _Clip) -> dict[int, dict[int, list[dict]]]:
    out = {}
    for span in clip.plan.chunks:
        status = read_status(clip.job, span.index)
        if status is not None and status.unswapped:
            out[span.index] = {int(t): ranges for t, ranges in status.unswapped.items()}
    return out


def format_summary(outcomes: list[ClipOutcome]) -> str:
    """A plain-text table, one row per clip, failures with their reason."""
    header = ("clip", "state", "frames", "chunks", "seconds", "output / error")
    rows = [
        (
            o.name,
            o.state,
            str(o.frames),
            str(o.chunks),
            f"{o.seconds:.1f}",
            o.error if o.error else o.output,
        )
        for o in outcomes
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]))
    failed = sum(o.state == "failed" for o in outcomes)
    lines.append(f"{len(outcomes)} clips: {len(outcomes) - failed} ok, {failed} failed")
    return "\n".join(lines)
