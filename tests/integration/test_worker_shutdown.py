"""Stopping a worker the normal way (SIGTERM, as `docker stop`) loses no run, and finished children are reused."""

from __future__ import annotations

import signal
from typing import Any

import flyte_celery as flyte
from tests._services import wait_until
from tests._workers import WorkerFactory, wait_exit
from tests.integration.programs import slow

RUN_DEADLINE_S = 60.0


def _executions(redis_client: Any) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in redis_client.hgetall("test:executions").items()}


def test_sigterm_hands_suspended_parents_to_the_remaining_worker(
    worker_factory: WorkerFactory, redis_client: Any
) -> None:
    # Six 1 s children one after the other: the stop lands while the parent is suspended on one of them.
    first = worker_factory.start(concurrency=1)
    run = flyte.with_runcontext(mode="remote").run(slow.sequential_parent, 6, 1.0)
    wait_until(lambda: _executions(redis_client).get("leaf-2"), 30, "the third child to start")
    second = worker_factory.start(concurrency=1)
    first.stop(signal.SIGTERM, wait=False)
    assert wait_exit(first, 30) == 0
    assert run.wait(timeout=RUN_DEADLINE_S) == flyte.ActionPhase.SUCCEEDED, second.log()[-3000:]
    assert run.outputs().o0 == sum(range(6))
    executions = _executions(redis_client)
    assert executions["parent"] == 2  # the first execution, then the take-over
    assert executions["leaf-0"] == 1  # finished before the stop: reused, not re-run
    assert executions["leaf-1"] == 1
    # The child running when the first worker handed its actions off is run again by the second; no other is.
    leaves = [executions[f"leaf-{i}"] for i in range(6)]
    assert all(1 <= n <= 2 for n in leaves), executions
    assert leaves.count(2) <= 1, executions


def test_a_killed_worker_loses_nothing_its_running_actions_are_taken_over(
    worker_factory: WorkerFactory, redis_client: Any
) -> None:
    first = worker_factory.start(concurrency=1)
    run = flyte.with_runcontext(mode="remote").run(slow.sequential_parent, 3, 2.0)
    wait_until(lambda: _executions(redis_client).get("leaf-1"), 30, "the second child to start")
    first.stop(signal.SIGKILL)  # the whole process group: main process and pool, no shutdown code runs
    third = worker_factory.start(concurrency=1)
    assert run.wait(timeout=RUN_DEADLINE_S) == flyte.ActionPhase.SUCCEEDED, third.log()[-3000:]
    assert run.outputs().o0 == sum(range(3))
    executions = _executions(redis_client)
    assert executions["leaf-0"] == 1  # finished before the kill: its result is reused
    assert executions["leaf-1"] == 2  # running when killed: taken over through its lease
    assert executions["leaf-2"] == 1
