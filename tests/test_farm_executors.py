"""The local process-pool executor: order, isolation of failures, one-line errors.

Kept apart from the end-to-end tests so its spawned workers import only this small module.
"""

from __future__ import annotations

from mmvideo.errors import InvalidInput
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


def test_one_line_keeps_our_messages_and_names_foreign_errors():
    assert one_line(InvalidInput("a.mp4: broken")) == "a.mp4: broken"
    assert one_line(KeyError("x")) == "KeyError: 'x'"
    assert one_line(RuntimeError("")) == "RuntimeError: "
