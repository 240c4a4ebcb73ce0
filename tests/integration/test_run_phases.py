"""A remote run's phase: queued until a worker has its root, running while one does, then terminal."""

from __future__ import annotations

import flyte_celery as flyte
from tests._workers import WorkerFactory
from tests.integration.programs import slow


def test_a_remote_run_goes_from_queued_to_running_to_succeeded(worker_factory: WorkerFactory) -> None:
    run = flyte.with_runcontext(mode="remote").run(slow.sequential_parent, 2, 0.5)
    assert run.phase == flyte.ActionPhase.QUEUED  # no worker yet
    assert not run.done()
    assert run.wait(timeout=0.2, wait_for="running") == flyte.ActionPhase.QUEUED  # gives up at the timeout

    worker_factory.start(concurrency=1)
    assert run.wait(timeout=30, wait_for="running") == flyte.ActionPhase.RUNNING
    assert run.wait(timeout=60) == flyte.ActionPhase.SUCCEEDED
    assert run.done()
    assert run.outputs().o0 == 1
