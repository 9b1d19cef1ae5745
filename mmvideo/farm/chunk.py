"""One unit of farm work: run chunk K of a plan, atomically, with a status file beside it.

A chunk counts as finished only when its status says ``done`` for the plan's current fingerprint
(input, source, checkpoint, config, frame range) *and* the output file still has the SHA-256
recorded there. Anything else (no status, a ``running`` status left by a killed node, a file
that was truncated or replaced) is redone from scratch, so a job killed at any instant and
restarted produces the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mmcore.atomic import remove_stale_partials, write_errors, write_json_atomic
from mmcore.errors import InvalidInput, OutputError
from mmcore.hashing import file_sha256
from mmvideo.farm.executors import one_line
from mmvideo.farm.plan import (
    JobPlan,
    check_inputs,
    load_plan,
    parts_dir,
)
from mmvideo.farm.scan import scan_video
from mmvideo.farm.swap import SwapSettings, check_checkpoint, run_job
from mmvideo.farm.typed import load_dataclass

log = logging.getLogger(__name__)


@dataclass
class ChunkStatus:
    """The status file of one chunk (``<job>.parts/chunk_KKKK.status.json``)."""

    index: int
    state: str  # "running", "done" or "failed"
    fingerprint: str
    checkpoint_sha256: str
    config_sha256: str
    host: str
    pid: int
    started: float
    finished: float | None = None
    frames: int | None = None
    sha256: str | None = None
    error: str | None = None
    # written frames of swapped tracks left unswapped: track id → [{first, last, reason}]
    # (what `--require-all` refuses; None in statuses written before it was recorded)
    unswapped: dict[str, Any] | None = None


@dataclass(frozen=True)
class ChunkResult:
    index: int
    skipped: bool  # already finished, nothing was run
    frames: int
    seconds: float


def status_path(job_path: str | Path, index: int) -> Path:
    return parts_dir(job_path) / f"chunk_{index:04d}.status.json"


def read_status(job_path: str | Path, index: int) -> ChunkStatus | None:
    """The chunk's status, or None when it has none (or an unreadable one, which means redo)."""
    path = status_path(job_path, index)
    try:
        return load_dataclass(ChunkStatus, json.loads(path.read_text()), path.name)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # InvalidInput (a key's type) is a ValueError
        log.warning("%s: ignoring unreadable status (%s); the chunk will be redone", path, exc)
        return None


def chunk_is_done(plan: JobPlan, job_path: str | Path, index: int) -> bool:
    """True when chunk ``index`` finished for this exact plan and its file is intact."""
    status = read_status(job_path, index)
    output = Path(plan.chunks[index].output)
    return (
        status is not None
        and status.state == "done"
        and status.fingerprint == plan.chunk_fingerprint(index)
        and output.is_file()
        and file_sha256(output) == status.sha256
    )


def run_chunk(job_path: str | Path, index: int, force: bool = False) -> ChunkResult:
    """Run chunk ``index`` of the plan at ``job_path`` unless it is already finished."""
    job_path = Path(job_path).resolve()
    plan = load_plan(job_path)
    if not 0 <= index < len(plan.chunks):
        raise InvalidInput(f"{job_path}: no chunk {index} (the plan has {len(plan.chunks)})")
    span = plan.chunks[index]
    if not force and chunk_is_done(plan, job_path, index):
        log.info("%s: chunk %d already done, skipped", job_path, index)
        return ChunkResult(index, skipped=True, frames=span.frames, seconds=0.0)
    check_inputs(plan)
    check_checkpoint(plan.settings)
    _remove_leftovers(Path(span.output), status_path(job_path, index))
    status = _new_status(plan, index)
    write_json_atomic(status_path(job_path, index), asdict(status))
    try:
        missed = run_job(plan.jobs[index], plan.settings.config)
        frames = _check_output(plan, index)
    except BaseException as exc:
        # Also on KeyboardInterrupt: the status must not claim "running" for a dead process.
        status.state, status.error, status.finished = (
            "failed",
            one_line(exc),
            time.time(),
        )
        write_json_atomic(status_path(job_path, index), asdict(status))
        raise
    status.state, status.frames, status.finished = "done", frames, time.time()
    status.unswapped = {str(track): ranges for track, ranges in missed.items()}
    status.sha256 = file_sha256(span.output)
    write_json_atomic(status_path(job_path, index), asdict(status))
    seconds = status.finished - status.started
    log.info("%s: chunk %d done, %d frames in %.1f s", job_path, index, frames, seconds)
    return ChunkResult(index, skipped=False, frames=frames, seconds=seconds)


def _new_status(plan: JobPlan, index: int) -> ChunkStatus:
    settings: SwapSettings = plan.settings
    return ChunkStatus(
        index=index,
        state="running",
        fingerprint=plan.chunk_fingerprint(index),
        checkpoint_sha256=settings.checkpoint_sha256,
        config_sha256=settings.config_sha256,
        host=socket.gethostname(),
        pid=os.getpid(),
        started=time.time(),
    )


def _remove_leftovers(output: Path, status: Path) -> None:
    """Delete this chunk's output and the temp files a killed writer left beside it."""
    if not output.parent.is_dir():
        with write_errors(output.parent, "create"):
            output.parent.mkdir(parents=True, exist_ok=True)
        return
    output.unlink(missing_ok=True)
    remove_stale_partials(output)
    status_temps = "." + status.name + "."
    for path in output.parent.iterdir():
        if path.name.startswith(status_temps):
            path.unlink(missing_ok=True)


def _check_output(plan: JobPlan, index: int) -> int:
    span = plan.chunks[index]
    if not Path(span.output).is_file():
        raise OutputError(f"{span.output}: the pipeline finished but wrote no chunk file")
    frames = scan_video(span.output).frames
    if frames != span.frames:
        raise OutputError(
            f"{span.output}: chunk has {frames} frames, the plan asked for {span.frames}"
        )
    return frames
