"""The local process-pool executor: order, isolation of failures, one-line errors.

Kept apart from the end-to-end tests so its spawned workers import only this small module.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmcore.errors import InvalidInput
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


def _hold(folder: str, i: int) -> None:
    """A long task that records when it starts and when it unwinds (like a writer's clean-up)."""
    (Path(folder) / f"{i}.started").touch()
    try:
        time.sleep(120)
    finally:
        (Path(folder) / f"{i}.cleaned").touch()


_DRIVER = """
import signal, sys
sys.path.insert(0, {tests!r})
from mmcore.errors import Terminated, raise_terminated
from mmvideo.farm.executors import LocalExecutor, Task
from test_farm_executors import _hold
signal.signal(signal.SIGTERM, raise_terminated)  # as mmvideo.commands.main does
try:
    LocalExecutor(workers=2, threads_per_worker=1).run(
        [Task(_hold, ({folder!r}, i), str(i)) for i in range(2)])
except Terminated:
    sys.exit(143)
"""


def test_sigterm_on_the_driver_reaches_the_running_workers(tmp_path):
    """docker stop / a farm manager signals only the driver: the running chunks must unwind
    (their partials removed) and the driver exit promptly, not wait for them to finish."""
    script = _DRIVER.format(tests=str(Path(__file__).parent), folder=str(tmp_path))
    driver = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"{i}.started").exists() for i in range(2)):
        assert time.monotonic() < deadline and driver.poll() is None, driver.stderr.read()
        time.sleep(0.1)
    driver.send_signal(signal.SIGTERM)
    try:
        code = driver.wait(timeout=30)
    except subprocess.TimeoutExpired:
        driver.kill()
        pytest.fail("the driver waited for its running tasks after SIGTERM")
    assert code == 143
    assert all((tmp_path / f"{i}.cleaned").exists() for i in range(2))
    assert "Traceback" not in driver.stderr.read()


def test_one_line_keeps_our_messages_and_names_foreign_errors():
    assert one_line(InvalidInput("a.mp4: broken")) == "a.mp4: broken"
    assert one_line(KeyError("x")) == "KeyError: 'x'"
    assert one_line(RuntimeError("")) == "RuntimeError: "
