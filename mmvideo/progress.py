"""Progress of a swap: tqdm bars per stage (fps and ETA) or one JSON line per second.

Stages call ``advance``; the pipeline calls ``begin`` for each pass and ``end`` once. The JSON
lines go to a sink the CLI provides (stdout), so a render-farm manager can parse them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

from tqdm import tqdm


class Progress:
    """Counts frames per stage; shows them as tqdm bars and/or emits JSON lines."""

    def __init__(
        self,
        bars: bool = True,
        json_sink: Callable[[str], None] | None = None,
        interval: float = 1.0,
    ):
        self.bars_enabled = bars
        self.sink = json_sink
        self.interval = interval
        self.phase = ""
        self.total = 0
        self.counts: dict[str, int] = {}
        self._bars: dict[str, tqdm] = {}
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
        if self.bars_enabled:
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
        if self.sink and self._thread is None:
            self._thread = threading.Thread(
                target=self._emit_loop, name="progress", daemon=True
            )
            self._thread.start()

    def advance(self, stage: str, n: int = 1) -> None:
        with self._lock:
            self.counts[stage] = self.counts.get(stage, 0) + n
        bar = self._bars.get(stage)
        if bar is not None:
            bar.update(n)

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
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.sink:
            self.sink(json.dumps(self.snapshot()))
        self._close_bars()

    def _emit_loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sink(json.dumps(self.snapshot()))

    def _close_bars(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars = {}
