"""Worker settings that recycle or reap pool processes (and so drop suspended parents) are refused at start."""

from __future__ import annotations

import pytest

from tests._services import wait_until
from tests._workers import Worker, WorkerFactory

EXIT_DEADLINE_S = 30.0


def _exit_code_or_ready(worker: Worker) -> int | None:
    """Wait until the worker exits (its code) or gets ready (None): a worker that was not refused fails fast."""

    def settled() -> tuple[int | None] | None:
        code = worker.process.poll()
        if code is not None:
            return (code,)
        return (None,) if f"{worker.name}@" in worker.log() and " ready." in worker.log() else None

    outcome = wait_until(settled, EXIT_DEADLINE_S, f"worker {worker.name} to exit or get ready")
    assert isinstance(outcome, tuple)
    code: int | None = outcome[0]
    return code


@pytest.mark.parametrize(
    ("concurrency", "args", "env", "named"),
    [
        pytest.param(1, ("--max-tasks-per-child", "5"), {}, "worker_max_tasks_per_child=5", id="max-tasks-per-child"),
        pytest.param(
            1, ("--max-memory-per-child", "100000"), {}, "worker_max_memory_per_child=100000", id="max-memory-per-child"
        ),
        pytest.param(None, ("--autoscale", "4,1"), {}, "--autoscale", id="autoscale"),
        pytest.param(
            1,
            (),
            {"FLYTE_CELERY_CELERY_WORKER_MAX_TASKS_PER_CHILD": "5"},
            "worker_max_tasks_per_child=5",
            id="max-tasks-per-child-from-env",
        ),
    ],
)
def test_settings_that_break_the_worker_model_are_refused_at_start(
    worker_factory: WorkerFactory, concurrency: int | None, args: tuple[str, ...], env: dict[str, str], named: str
) -> None:
    worker = worker_factory.start(concurrency, *args, wait=False, **env)
    code = _exit_code_or_ready(worker)
    log = worker.log()
    assert code is not None, f"the worker started instead of refusing:\n{log[-3000:]}"
    assert code != 0, log[-3000:]
    assert "flyte-celery worker refused to start" in log, log[-3000:]
    assert named in log, log[-3000:]
    assert "suspended" in log, log[-3000:]  # the message says why, not only what


def test_a_plain_worker_command_is_not_refused(worker_factory: WorkerFactory) -> None:
    # The control case: the refusal above is about those settings, not about every start.
    worker = worker_factory.start(1)
    assert worker.process.poll() is None
    assert "refused to start" not in worker.log()
