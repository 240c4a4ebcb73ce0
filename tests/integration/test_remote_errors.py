"""Errors across processes: user errors keep their code and traceback, retries re-run the same action with a
growing attempt number, and timeouts are enforced on the workers."""

from __future__ import annotations

import time
from typing import Any

import pytest

import flyte_celery as flyte
from flyte_celery.errors import RuntimeUserError, TaskTimeoutError
from tests._workers import WorkerFactory
from tests.integration.programs import remote_tasks

RUN_DEADLINE_S = 30.0


def _finished(run: flyte.Run) -> flyte.ActionPhase:
    phase = run.wait(timeout=RUN_DEADLINE_S)
    assert phase.is_terminal, f"run {run.name} still {phase} after {RUN_DEADLINE_S}s"
    return phase


def _attempts(redis_client: Any) -> list[tuple[int, str]]:
    entries = [entry.decode().split(":", 1) for entry in redis_client.lrange("test:attempts", 0, -1)]
    return [(int(attempt), action) for attempt, action in entries]


def test_a_child_error_reaches_its_remote_parent_and_the_client_with_code_and_traceback(
    worker_factory: WorkerFactory,
) -> None:
    worker_factory.start(concurrency=1)
    caught = flyte.with_runcontext(mode="remote").run(remote_tasks.parent_catching, 7)
    assert _finished(caught) == flyte.ActionPhase.SUCCEEDED
    kind, code, traceback_text = caught.outputs().o0
    assert (kind, code) == ("RuntimeUserError", "ValueError")
    assert traceback_text is not None
    assert "failing_child" in traceback_text
    assert "bad value 7" in traceback_text

    raised = flyte.with_runcontext(mode="remote").run(remote_tasks.parent_of_failing, 8)
    assert _finished(raised) == flyte.ActionPhase.FAILED
    with pytest.raises(RuntimeUserError) as error:
        raised.outputs()
    assert error.value.code == "ValueError"
    assert "bad value 8" in str(error.value)
    assert error.value.traceback_text is not None
    assert "failing_child" in error.value.traceback_text


def test_retries_rerun_the_same_action_with_a_growing_attempt_number(
    worker_factory: WorkerFactory, redis_client: Any
) -> None:
    worker_factory.start(concurrency=1)
    run = flyte.with_runcontext(mode="remote").run(remote_tasks.parent_of_flaky, 2)
    assert _finished(run) == flyte.ActionPhase.SUCCEEDED
    assert run.outputs().o0 == 2
    attempts = _attempts(redis_client)
    assert [attempt for attempt, _ in attempts] == [0, 1, 2]
    assert len({action for _, action in attempts}) == 1, attempts
    assert attempts[0][1] != "a0"  # the child's own action, not the parent's


def test_a_root_that_exhausts_its_retries_fails_with_the_last_error(
    worker_factory: WorkerFactory, redis_client: Any
) -> None:
    worker_factory.start(concurrency=1)
    run = flyte.with_runcontext(mode="remote").run(remote_tasks.flaky, 5)
    assert _finished(run) == flyte.ActionPhase.FAILED
    with pytest.raises(RuntimeUserError, match="attempt 2 fails on purpose") as error:
        run.outputs()
    assert error.value.code == "ValueError"
    assert _attempts(redis_client) == [(0, "a0"), (1, "a0"), (2, "a0")]


def test_a_root_timeout_ends_the_run_as_timed_out(worker_factory: WorkerFactory) -> None:
    worker_factory.start(concurrency=1)
    started = time.monotonic()
    run = flyte.with_runcontext(mode="remote").run(remote_tasks.too_slow)
    assert _finished(run) == flyte.ActionPhase.TIMED_OUT
    assert time.monotonic() - started < 8, "the 10 s body was not cut at its 1 s timeout"
    with pytest.raises(TaskTimeoutError):
        run.outputs()


def test_a_child_timeout_surfaces_in_its_parent(worker_factory: WorkerFactory) -> None:
    worker_factory.start(concurrency=1)
    started = time.monotonic()
    run = flyte.with_runcontext(mode="remote").run(remote_tasks.parent_of_too_slow)
    phase = _finished(run)
    assert time.monotonic() - started < 8, "the 10 s child was not cut at its 1 s timeout"
    assert phase in (flyte.ActionPhase.TIMED_OUT, flyte.ActionPhase.FAILED)
    with pytest.raises(TaskTimeoutError):
        run.outputs()
