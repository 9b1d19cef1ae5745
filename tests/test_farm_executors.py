"""The local process-pool executor: order, isolation of failures, one-line errors.

Kept apart from the end-to-end tests so its spawned workers import only this small module.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mmvideo.errors import InvalidInput
from mmvideo.farm import executors
from mmvideo.farm.executors import LocalExecutor, Task, one_line


def _fails(x: int) -> int:
    if x == 1:
        raise InvalidInput("clip 1: broken on purpose")
    if x == 2:
        raise ZeroDivisionError("division by zero\nsecond line")
    return x * 10


def test_local_executor_keeps_order_and_survives_failing_tasks():
    tasks = [Task(_fails, (i,), f"t{i}", weight=5) for i in range(4)]
    outcomes = LocalExecutor(workers=2, threads_per_worker=1).run(tasks)
    assert [o.label for o in outcomes] == ["t0", "t1", "t2", "t3"]
    assert [(o.ok, o.value) for o in outcomes] == [
        (True, 0),
        (False, None),
        (False, None),
        (True, 30),
    ]
    assert outcomes[1].error == "clip 1: broken on purpose"
    assert outcomes[2].error == "ZeroDivisionError: division by zero"


def _mark(path: str) -> None:
    time.sleep(0.2)
    Path(path).touch()


def test_an_interrupted_driver_starts_no_more_tasks(tmp_path, monkeypatch):
    """Ctrl-C or SIGTERM on the driver while tasks are queued: it stops after what the workers
    already hold, instead of running every remaining task before it can exit."""

    class Interrupting:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def update(self, n):
            raise KeyboardInterrupt  # as SIGINT/SIGTERM raise it on the driver

    monkeypatch.setattr(executors, "bar", lambda *args: Interrupting())
    marks = [tmp_path / f"{i}.done" for i in range(12)]
    tasks = [Task(_mark, (str(m),), m.name) for m in marks]
    with pytest.raises(KeyboardInterrupt):
        LocalExecutor(workers=1, threads_per_worker=1).run(tasks)
    ran = sum(m.exists() for m in marks)
    # the first, and at most the few already in the pool's call queue
    assert 1 <= ran <= 4


def test_one_line_keeps_our_messages_and_names_foreign_errors():
    assert one_line(InvalidInput("a.mp4: broken")) == "a.mp4: broken"
    assert one_line(KeyError("x")) == "KeyError: 'x'"
    assert one_line(RuntimeError("")) == "RuntimeError: "
