"""Where units of farm work run: a local process pool, or Ray tasks on a cluster.

Both executors take a list of ``Task``s (a module-level function and its arguments, so it can be
pickled to another process or machine) and return one ``Outcome`` per task in the same order. A
failing task never stops the others; its error comes back as one line. Progress is one bar on
the driver (plain lines when stderr is a log), advanced by each task's weight (its frame count)
as tasks finish.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mmcore.errors import InvalidInput, MMVideoError, Terminated, raise_terminated
from mmvideo.progress import bar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    label: str
    weight: int = 1  # units of progress (frames) this task accounts for
    gpu: bool = False  # runs on CUDA: Ray reserves GPUs for it


@dataclass
class Outcome:
    label: str
    ok: bool
    value: Any = None
    error: str | None = None
    seconds: float = 0.0


class Executor(Protocol):
    name: str

    def run(self, tasks: Sequence[Task], desc: str = "chunks") -> list[Outcome]: ...


def one_line(exc: BaseException) -> str:
    """An error as one line: our own messages as they are, others prefixed with their type."""
    lines = str(exc).strip().splitlines()
    message = lines[0] if lines else ""
    return message if isinstance(exc, MMVideoError) else f"{type(exc).__name__}: {message}"


def call_task(fn: Callable[..., Any], args: tuple[Any, ...], label: str) -> Outcome:
    """Run one task and turn any exception into an ``Outcome`` (exceptions may not unpickle)."""
    started = time.perf_counter()
    try:
        value = fn(*args)
    except Exception as exc:  # noqa: BLE001 - one broken task must not stop the others
        log.debug("task %s failed:\n%s", label, traceback.format_exc())
        return Outcome(label, False, error=one_line(exc), seconds=time.perf_counter() - started)
    return Outcome(label, True, value=value, seconds=time.perf_counter() - started)


def _init_worker(threads: int) -> None:
    # Each worker gets its share of the cores: torch and OpenMP read this when first imported
    # (in the task), and would otherwise start one thread per core in every worker.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    # An idle worker told to stop leaves quietly (SystemExit prints no traceback)
    signal.signal(signal.SIGTERM, _leave)


def _leave(signum, frame) -> None:
    raise SystemExit(128 + signum)


def _call_in_worker(fn: Callable[..., Any], args: tuple[Any, ...], label: str) -> Outcome:
    """``call_task`` in a pool worker, where SIGTERM unwinds the task like Ctrl-C (partials
    removed, threads joined) instead of killing the process mid-write."""
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        return call_task(fn, args, label)
    finally:
        signal.signal(signal.SIGTERM, previous)


class LocalExecutor:
    """A process pool on this machine (``spawn``: torch and forked threads do not mix)."""

    name = "local"

    def __init__(self, workers: int | None = None, threads_per_worker: int | None = None):
        cores = os.cpu_count() or 1
        self.workers = max(1, workers or cores)
        self.threads = max(1, threads_per_worker or cores // self.workers)

    def run(self, tasks: Sequence[Task], desc: str = "chunks") -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(tasks)
        if not tasks:
            return []
        context = multiprocessing.get_context("spawn")
        with (
            cf.ProcessPoolExecutor(
                max_workers=min(self.workers, len(tasks)),
                mp_context=context,
                initializer=_init_worker,
                initargs=(self.threads,),
            ) as pool,
            bar(sum(t.weight for t in tasks), desc) as done,
        ):
            futures = {
                pool.submit(_call_in_worker, t.fn, t.args, t.label): i for i, t in enumerate(tasks)
            }
            try:
                for future in cf.as_completed(futures):
                    i = futures[future]
                    outcomes[i] = _result(future, tasks[i].label)
                    done.update(tasks[i].weight)
            except BaseException as exc:
                # Ctrl-C or SIGTERM on the driver: tasks not yet handed to a worker never start
                # (leaving the pool runs every queued task first). A terminal's Ctrl-C reaches
                # the whole process group; a SIGTERM (docker stop, a farm manager) reaches only
                # the driver, so it is passed on to the workers, which unwind their tasks.
                workers = list((pool._processes or {}).values())  # shutdown forgets them
                pool.shutdown(wait=False, cancel_futures=True)
                if isinstance(exc, Terminated):
                    for process in workers:
                        process.terminate()
                raise
        return [o for o in outcomes if o is not None]


def _result(future: cf.Future, label: str) -> Outcome:
    try:
        return future.result()
    except cf.process.BrokenProcessPool as exc:
        return Outcome(label, False, error=f"worker process died: {exc}")


class RayExecutor:
    """Ray tasks: one per unit, with retries on node loss and GPUs requested when present.

    Connects to ``address`` (``"auto"``, ``"ray://head:10001"``, ...) or starts a local Ray when
    it is None; a Ray already initialised in this process (tests, notebooks) is reused as is.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        cpus_per_task: float = 1.0,
        gpus_per_task: float | None = None,
        retries: int = 2,
    ):
        try:
            import ray
        except ImportError as exc:
            raise InvalidInput("--executor ray needs Ray: pip install 'mmvideo[farm]'") from exc
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        if gpus_per_task is None:
            # A whole GPU per CUDA chunk where the cluster has GPUs to give; on a cluster without
            # any, the chunk runs anyway and reports that CUDA is missing.
            gpus_per_task = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        self.gpus_per_task = gpus_per_task
        self.options = {
            "num_cpus": cpus_per_task,
            "max_retries": retries,  # re-runs a task whose worker or node died
        }

    def run(self, tasks: Sequence[Task], desc: str = "chunks") -> list[Outcome]:
        ray = self._ray
        remote = ray.remote(call_task)
        refs = {
            remote.options(**self.options, num_gpus=self.gpus_per_task if t.gpu else 0).remote(
                t.fn, t.args, t.label
            ): i
            for i, t in enumerate(tasks)
        }
        outcomes: list[Outcome | None] = [None] * len(tasks)
        pending = list(refs)
        with bar(sum(t.weight for t in tasks), desc) as progress:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    i = refs[ref]
                    try:
                        outcomes[i] = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        message = str(exc).strip().splitlines()[0]
                        outcomes[i] = Outcome(tasks[i].label, False, error=f"ray: {message}")
                    progress.update(tasks[i].weight)
        return [o for o in outcomes if o is not None]


def make_executor(
    kind: str,
    *,
    workers: int | None = None,
    ray_address: str | None = None,
    gpus_per_task: float | None = None,
) -> Executor:
    if kind == "local":
        return LocalExecutor(workers)
    if kind == "ray":
        return RayExecutor(ray_address, gpus_per_task=gpus_per_task)
    raise InvalidInput(f"unknown executor {kind!r} (choose local or ray)")
