"""`run.abort()` on a remote run: the run ends as aborted at once, its running actions stop, the worker goes on."""

from __future__ import annotations

from typing import Any

import pytest

import flyte_celery as flyte
from flyte_celery.errors import ActionAbortedError
from tests._services import wait_until
from tests._workers import WorkerFactory
from tests.integration.programs import remote_tasks

RUN_DEADLINE_S = 30.0
ABORT_DEADLINE_S = 10.0
CHILD_SECONDS = 30.0


def _executions(redis_client: Any, name: str) -> int:
    return int(redis_client.hget("test:executions", name) or 0)


def test_abort_ends_a_long_run_and_frees_the_worker(worker_factory: WorkerFactory, redis_client: Any) -> None:
    # One slot: if the aborted child kept sleeping, the next run could not start for 30 s.
    worker = worker_factory.start(concurrency=1)
    run = flyte.with_runcontext(mode="remote").run(remote_tasks.waits_on_sleeper, CHILD_SECONDS)
    wait_until(lambda: _executions(redis_client, "sleeper"), RUN_DEADLINE_S, "the 30 s child to start")
    assert run.phase == flyte.ActionPhase.RUNNING

    run.abort()
    wait_until(lambda: run.phase == flyte.ActionPhase.ABORTED, ABORT_DEADLINE_S, "the run to be aborted")
    assert run.done()
    with pytest.raises(ActionAbortedError):
        run.outputs()
    assert flyte.Run.get(run.name).phase == flyte.ActionPhase.ABORTED  # as any other client sees it

    after = flyte.with_runcontext(mode="remote").run(remote_tasks.add_one, 1)
    assert after.wait(timeout=ABORT_DEADLINE_S) == flyte.ActionPhase.SUCCEEDED, worker.log()[-3000:]
    assert after.outputs().o0 == 2
    assert _executions(redis_client, "sleeper-finished") == 0  # the child was cancelled, not left to finish
    assert _executions(redis_client, "waits_on_sleeper") == 1
    assert worker.process.poll() is None


def test_abort_of_a_finished_run_keeps_its_outputs(worker_factory: WorkerFactory) -> None:
    worker_factory.start(concurrency=1)
    run = flyte.with_runcontext(mode="remote").run(remote_tasks.add_one, 1)
    assert run.wait(timeout=RUN_DEADLINE_S) == flyte.ActionPhase.SUCCEEDED
    run.abort()
    assert run.phase == flyte.ActionPhase.SUCCEEDED
    assert run.outputs().o0 == 2


def test_every_aborted_action_says_why(worker_factory: WorkerFactory, redis_client: Any) -> None:
    worker_factory.start(concurrency=1)
    run = flyte.with_runcontext(mode="remote").run(remote_tasks.waits_on_sleeper, CHILD_SECONDS)
    wait_until(lambda: _executions(redis_client, "sleeper"), RUN_DEADLINE_S, "the 30 s child to start")

    run.abort(reason="budget spent")
    wait_until(
        lambda: [a.phase for a in run.actions()] == [flyte.ActionPhase.ABORTED] * 2,
        ABORT_DEADLINE_S,
        "the root and its running child to be recorded as aborted",
    )
    root, child = run.actions()
    assert root.error_info is not None
    assert root.error_info.message == f"run {run.name} was aborted: budget spent"  # the client's record wins
    assert child.error_info is not None
    assert child.error_info.message == (
        f"action {child.name} was aborted while it ran (run {run.name} was aborted: budget spent)"
    )
