"""A run's `env_vars` reach `os.environ` in every one of its tasks on the workers, and no task of another run."""

from __future__ import annotations

from typing import Any

import pytest

import flyte_celery as flyte
from tests._services import wait_until
from tests._workers import WorkerFactory
from tests.integration.programs import remote_tasks

RUN_DEADLINE_S = 30.0
VAR = remote_tasks.ENV_VAR


@pytest.fixture(autouse=True)
def _no_var_in_the_workers_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Workers inherit this process's environment: the variable must come from the run, not from here.
    monkeypatch.delenv(VAR, raising=False)


def _outputs(run: flyte.Run) -> Any:
    assert run.wait(timeout=RUN_DEADLINE_S) == flyte.ActionPhase.SUCCEEDED, run.name
    return run.outputs().o0


def test_env_vars_reach_the_root_and_its_children_and_not_later_runs(worker_factory: WorkerFactory) -> None:
    worker_factory.start(concurrency=1)  # one pool process: every task below runs in the same process
    with_var = flyte.with_runcontext(mode="remote", env_vars={VAR: "1"}).run(remote_tasks.env_root)
    assert _outputs(with_var) == ["1", "1", "1"]  # root, async child, sync child
    assert _outputs(flyte.with_runcontext(mode="remote").run(remote_tasks.env_probe)) is None
    assert _outputs(flyte.with_runcontext(mode="remote").run(remote_tasks.env_root)) == [None, None, None]


def test_a_task_of_another_run_does_not_see_the_env_vars_of_a_suspended_parent(
    worker_factory: WorkerFactory, redis_client: Any
) -> None:
    worker_factory.start(concurrency=1)
    holder = flyte.with_runcontext(mode="remote", env_vars={VAR: "1"}).run(remote_tasks.env_holder)
    try:
        # The holder waits on a child nobody serves: it stays suspended in the only pool process.
        wait_until(
            lambda: redis_client.zscore("flyte_celery:leases", f"{holder.name}:a0") is not None,
            RUN_DEADLINE_S,
            "the holder to suspend",
        )
        pid, seen = _outputs(flyte.with_runcontext(mode="remote").run(remote_tasks.env_probe_with_pid))
        assert pid == redis_client.get("test:holder_pid").decode(), "the probe ran in another process"
        assert holder.phase == flyte.ActionPhase.RUNNING, "the holder was not suspended while the probe ran"
        assert seen is None
    finally:
        holder.abort()


def test_a_leaf_of_another_run_does_not_see_the_env_vars_of_a_resumed_parent(
    worker_factory: WorkerFactory, redis_client: Any
) -> None:
    worker_factory.start(concurrency=1)  # the parent and the other run's leaf share its one pool process
    worker_factory.start(1, "-Q", remote_tasks.SIDE_QUEUE)  # runs the parent's child
    parent = flyte.with_runcontext(mode="remote", env_vars={VAR: "1"}).run(remote_tasks.env_resumer, 1.0)
    wait_until(
        lambda: redis_client.zscore("flyte_celery:leases", f"{parent.name}:a0") is not None,
        RUN_DEADLINE_S,
        "the parent to suspend",
    )
    watcher = flyte.with_runcontext(mode="remote").run(remote_tasks.env_watcher, 2.0)
    assert _outputs(parent) == 1
    assert _outputs(watcher) == ["None"]
