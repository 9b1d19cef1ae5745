"""Progress of a swap: tqdm bars per stage (fps and ETA) or one JSON line per second.

Stages call ``advance``; the pipeline calls ``begin`` for each pass and ``end`` once (``close``
on every way out). The JSON lines go to a sink the CLI provides (stdout), so a render-farm
manager can parse them.

Bars are for a terminal. When stderr is a log (a farm node, a pipe, a file), cursor escapes
would fill it with hundreds of redrawn lines, so ``bar`` and ``Progress`` print plain lines
there instead (``LineBar``); with ``-q`` (only errors) they print nothing.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Self

from tqdm import tqdm

LINE_SECONDS = 5.0  # a plain progress line at least this often while work advances...
LINE_STEP = 0.1  # ...and whenever this much more of the total is done


def shown() -> bool:
    """Progress is shown where warnings are: ``-q`` (errors only) hides it."""
    return logging.getLogger("mmvideo").isEnabledFor(logging.WARNING)


class LineBar:
    """A tqdm bar's ``update``/``close`` as plain lines on stderr, for logs: a line every
    ``LINE_SECONDS`` or ``LINE_STEP`` of the total, whichever comes first, and one at the end."""

    def __init__(self, total: int, desc: str, unit: str = "frame"):
        self.total, self.desc, self.unit = total, desc, unit
        self.n = 0
        self._t0 = self._last_t = time.monotonic()
        self._last_n = 0
        self.postfix = ""

    def set_postfix(self, refresh: bool = True, **values) -> None:
        """tqdm's ``set_postfix``: ``key=value`` pairs shown at the end of the next line."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        step = self.total and self.n - self._last_n >= LINE_STEP * self.total
        if step or (now - self._last_t >= LINE_SECONDS and self.n > self._last_n):
            self._line(now)

    def close(self) -> None:
        if self.n != self._last_n:
            self._line(time.monotonic())

    def _line(self, now: float) -> None:
        elapsed = now - self._t0
        rate = self.n / elapsed if elapsed > 0 else 0.0
        text = f"{self.desc}: {self.n}/{self.total} {self.unit}s"
        if self.total:
            text += f" ({100 * self.n // self.total}%)"  # 100 % only when all is done
        text += f", {rate:.1f} {self.unit}s/s"
        if rate > 0 and self.n < self.total:
            text += f", ETA {(self.total - self.n) / rate:.0f} s"
        if self.postfix:
            text += f", {self.postfix}"
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
        self._last_t, self._last_n = now, self.n

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def bar(total: int, desc: str, unit: str = "frame", show: bool = True) -> tqdm | LineBar:
    """One progress bar: tqdm on a terminal, plain lines in a log, nothing with ``-q`` (or
    ``show=False``)."""
    if not (show and shown()):
        return tqdm(total=total, disable=True)
    if not sys.stderr.isatty():
        return LineBar(total, desc, unit)
    return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)


class Progress:
    """Counts frames per stage; shows them as tqdm bars (plain lines in a log) and/or emits
    JSON lines."""

    def __init__(
        self,
        bars: bool = True,
        json_sink: Callable[[str], None] | None = None,
        interval: float = 1.0,
    ):
        self.bars_enabled = bars and shown()
        self.sink = json_sink
        self.interval = interval
        self.phase = ""
        self.total = 0
        self.counts: dict[str, int] = {}
        self._bars: dict[str, tqdm] = {}
        self._line: LineBar | None = None
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._phase_t0 = self._t0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def begin(self, phase: str, stages: list[str], total: int) -> None:
        self._close_bars()
        with self._lock:
            self.phase, self.total = phase, total
            self.counts = {s: 0 for s in stages}
            self._phase_t0 = time.monotonic()
        if self.bars_enabled and sys.stderr.isatty():
            self._bars = {
                s: tqdm(
                    total=total,
                    desc=f"{phase}:{s}" if s != phase else phase,
                    unit="frame",
                    position=i,
                    leave=False,
                    dynamic_ncols=True,
                )
                for i, s in enumerate(stages)
            }
        elif self.bars_enabled:
            # one line per phase, for the slowest stage: what the whole pass has finished
            self._line = LineBar(total, phase)
        if self.sink and self._thread is None:
            self._thread = threading.Thread(target=self._emit_loop, name="progress", daemon=True)
            self._thread.start()

    def advance(self, stage: str, n: int = 1) -> None:
        with self._lock:
            self.counts[stage] = self.counts.get(stage, 0) + n
            if self._line is not None:
                self._line.update(min(self.counts.values()) - self._line.n)
        stage_bar = self._bars.get(stage)
        if stage_bar is not None:
            stage_bar.update(n)

    def snapshot(self) -> dict:
        """The JSON record: phase, frames done (by the slowest stage), fps, ETA, per-stage counts."""
        with self._lock:
            counts = dict(self.counts)
            elapsed = time.monotonic() - self._phase_t0
            done = min(counts.values()) if counts else 0
            fps = done / elapsed if elapsed > 0 else 0.0
            eta = (self.total - done) / fps if fps > 0 else None
            return {
                "phase": self.phase,
                "done": done,
                "total": self.total,
                "fps": round(fps, 2),
                "eta_s": None if eta is None else round(eta, 1),
                "elapsed_s": round(time.monotonic() - self._t0, 1),
                "stages": counts,
            }

    def end(self) -> None:
        """The run finished: the last JSON record, then ``close``."""
        self._stop_thread()
        if self.sink:
            self.sink(json.dumps(self.snapshot()))
        self.close()

    def close(self) -> None:
        """Stop the JSON thread and take the bars down (also after an error, so the error
        message starts on a line of its own and no thread outlives the run)."""
        self._stop_thread()
        self._close_bars()

    def _stop_thread(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _emit_loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sink(json.dumps(self.snapshot()))

    def _close_bars(self) -> None:
        for stage_bar in self._bars.values():
            stage_bar.close()
        self._bars = {}
        with self._lock:
            if self._line is not None:
                self._line.close()
            self._line = None
