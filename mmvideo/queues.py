"""Threads joined by bounded queues: the plumbing of the swap pipeline's stages.

Every stage thread keeps its error for the caller (``drain`` re-raises it on the consuming
thread) and always ends its output queue, and no thread blocks forever on a full queue once the
run is torn down, so an error or Ctrl-C anywhere stops the whole chain promptly. Whoever starts
stage threads joins them (``stop_and_join``) on every way out: a thread still inside torch or
FFmpeg when the interpreter exits aborts the process ("terminate called without an active
exception", exit 134) instead of letting it exit with its own code.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

END = object()  # the end-of-stream marker every stage puts last
QUEUE_SIZE = 8  # items waiting between two stages unless the caller says otherwise


@dataclass
class StageRun:
    """State shared by the threads of one run: the stop signal, kept errors, busy seconds."""

    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def add_time(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


def threaded(items: Iterable, stop: threading.Event, size: int = QUEUE_SIZE) -> Iterator:
    """Iterate ``items`` produced on a background thread (decode overlaps the consumer; PyAV
    releases the GIL inside the codecs). The producer's error is raised here; leaving early
    sets ``stop`` and waits for the thread to end."""
    q: queue.Queue = queue.Queue(maxsize=size)
    run = StageRun(stop=stop)

    def produce() -> None:
        try:
            for item in items:
                if not put(q, item, stop):
                    return
        finally:
            # closed here, on the thread that decodes, never under its feet from another one
            getattr(items, "close", lambda: None)()

    thread = spawn("decode", produce, run, q)
    thread.start()
    try:
        yield from drain(q, run)
    finally:
        stop_and_join(run, [thread])


def spawn(
    name: str, body: Callable[[], None], run: StageRun, outq: queue.Queue
) -> threading.Thread:
    """A stage thread: runs ``body``, keeps its error for the caller, always ends ``outq``."""

    def target() -> None:
        try:
            body()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread by drain
            run.errors.append(exc)
            run.stop.set()
        put(outq, END, run.stop)

    return threading.Thread(target=target, name=name, daemon=True)


def stop_and_join(run: StageRun, threads: Iterable[threading.Thread]) -> None:
    """Tear the run down and wait for its started threads (each ends within one item)."""
    run.stop.set()
    for thread in threads:
        if thread.ident is not None:  # never started: the writer failed to open first
            thread.join()


def map_stage(
    name: str, fn: Callable, inq: queue.Queue, outq: queue.Queue, run: StageRun
) -> threading.Thread:
    """A stage applying ``fn`` to every item of ``inq``, timed under ``name``."""

    def body() -> None:
        for item in drain(inq, run):
            t = time.perf_counter()
            out = fn(item)
            run.add_time(name, time.perf_counter() - t)
            if not put(outq, out, run.stop):
                return

    return spawn(name, body, run, outq)


def put(q: queue.Queue, item, stop: threading.Event) -> bool:
    """Put unless the run is being torn down (so no thread blocks forever on a full queue)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def drain(q: queue.Queue, run: StageRun) -> Iterator:
    """Items of ``q`` until its end marker; raises a stage's error as soon as one is kept."""
    while True:
        try:
            item = q.get(timeout=0.1)
        except queue.Empty:
            if run.errors:
                raise run.errors[0] from None
            if run.stop.is_set():
                return  # torn down by the caller (error or Ctrl-C elsewhere)
            continue
        if item is END:
            if run.errors:
                raise run.errors[0]
            return
        yield item
