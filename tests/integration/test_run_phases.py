"""A remote run's phase: queued until a worker has its root, running while one does, then terminal."""

from __future__ import annotations

from typing import Any

import pytest

import flyte_celery as flyte
from flyte_celery._celery.keys import Keys
from tests._workers import WorkerFactory
from tests.integration.programs import slow, trees


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


def test_flyte_run_picks_remote_when_the_config_says_so(
    worker_factory: WorkerFactory, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYTE_CELERY_RUN_MODE", "remote")
    flyte.init_from_config()
    worker_factory.start(concurrency=1)

    run = flyte.run(trees.tree, 2, 2)

    assert redis_client.exists(Keys("flyte_celery:").run(run.name))  # recorded on the cluster, not run in-process
    assert flyte.Run.get(run.name).wait(timeout=60) == flyte.ActionPhase.SUCCEEDED
    assert run.outputs().o0 == 4
