"""The context-manager protocol shared by every frame writer."""

from __future__ import annotations

from typing import Self


class AtomicWriter:
    """Mixin for writers with ``close()`` (publish the finished output) and ``abort()`` (remove
    everything written): leaving a ``with`` block normally publishes, an exception aborts, so an
    error or Ctrl-C never leaves a half-written output behind."""

    def close(self) -> object:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
