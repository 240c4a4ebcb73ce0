"""`flyte_celery.remote` against real workers: `Run.listall` filters and order, `details()` and `actions()` of a run
with succeeding and failing children (tasks, parents, phases, errors, reprs, times), `abort()` of a running run as
the index records it, a hybrid run's actions, and local runs, which stay in the process that ran them."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

import flyte_celery as flyte
from flyte_celery import remote
from flyte_celery.errors import RunNotFoundError
from tests._services import wait_until
from tests._workers import WorkerFactory
from tests.integration.programs import run_views

RUN_DEADLINE_S = 60.0
FAILED, SUCCEEDED = remote.ActionPhase.FAILED, remote.ActionPhase.SUCCEEDED
RUNNING, ABORTED = remote.ActionPhase.RUNNING, remote.ActionPhase.ABORTED
LEAVES = 20


def _names(runs: Any) -> list[str]:
    return [run.name for run in runs]


def test_runs_are_listed_and_their_actions_recorded(redis_client: Any, worker_factory: WorkerFactory) -> None:
    worker_factory.start(concurrency=2)
    failing = flyte.with_runcontext(mode="remote", project="api", domain="dev").run(run_views.fan_out, LEAVES)
    good_name = f"good-{secrets.token_hex(4)}"
    good = flyte.with_runcontext(mode="remote", project="api", domain="prod", name=good_name).run(run_views.all_good, 3)
    assert failing.wait(timeout=RUN_DEADLINE_S) == FAILED
    assert good.wait(timeout=RUN_DEADLINE_S) == SUCCEEDED

    assert remote.Run is flyte.Run  # `flyte.run` returns the remote API's Run, as in Flyte
    assert _names(remote.Run.listall()) == [good.name, failing.name]  # newest first
    assert _names(remote.Run.listall(limit=1)) == [good.name]
    assert _names(remote.Run.listall(in_phase=["failed"])) == [failing.name]
    assert _names(remote.Run.listall(in_phase=("PHASE_SUCCEEDED", "running"))) == [good.name]
    assert _names(remote.Run.listall(project="api", domain="prod")) == [good.name]
    assert _names(remote.Run.listall(project="other")) == []
    assert _names(remote.Run.listall(name_prefix="good-")) == [good.name]
    with pytest.raises(ValueError, match="unknown phase 'finished'"):
        remote.Run.listall(in_phase=["finished"])

    details = remote.Run.get(failing.name).details()
    assert (details.task_name, details.phase, details.mode) == ("run_views.fan_out", FAILED, "remote")
    assert (details.project, details.domain) == ("api", "dev")
    assert details.error_info is not None
    assert (details.error_info.code, details.error_info.message) == ("RuntimeError", f"1 of {LEAVES} leaves failed")
    assert details.start_time is not None
    assert details.end_time is not None
    assert details.start_time <= details.end_time

    root, *children = remote.Run.get(failing.name).actions()
    assert (root.name, root.task_name, root.phase, root.parent) == ("a0", "run_views.fan_out", FAILED, None)
    assert root.inputs_repr == f"(n={LEAVES})"
    assert len(children) == LEAVES
    assert {(c.task_name, c.parent) for c in children} == {("run_views.leaf", "a0")}
    assert all(c.done() for c in children)
    (failed,) = [c for c in children if c.phase is FAILED]
    assert failed.inputs_repr == f"(i={run_views.FAILING_REMAINDER})"
    assert failed.error_info is not None
    assert (failed.error_info.code, failed.error_info.kind) == ("ValueError", "user")
    assert failed.error_info.message == f"leaf {run_views.FAILING_REMAINDER} refuses"
    assert "raise ValueError" in failed.error_info.traceback
    succeeded = {c.inputs_repr: c.outputs_repr for c in children if c.phase is SUCCEEDED}
    assert len(succeeded) == LEAVES - 1
    assert succeeded["(i=3)"] == "6"
    for child in children:
        assert child.queued_time is not None
        assert child.start_time is not None
        assert child.end_time is not None
        assert child.queued_time <= child.start_time <= child.end_time

    good_actions = good.actions()
    assert (good_actions[0].name, [a.phase for a in good_actions]) == ("a0", [SUCCEEDED] * 4)


def test_abort_of_a_running_run_shows_in_its_records(redis_client: Any, worker_factory: WorkerFactory) -> None:
    worker_factory.start(concurrency=1)
    run = flyte.with_runcontext(mode="remote").run(run_views.waits_forever, "x")
    handle = remote.Run.get(run.name)
    wait_until(lambda: [a.phase for a in handle.actions()] == [RUNNING, SUCCEEDED], RUN_DEADLINE_S, "the root to wait")
    assert _names(remote.Run.listall(in_phase=["running"])) == [run.name]

    handle.abort(reason="enough")
    wait_until(lambda: handle.details().phase is ABORTED, RUN_DEADLINE_S, "the run to be aborted")
    root, leaf = handle.actions()
    assert (root.phase, leaf.phase) == (ABORTED, SUCCEEDED)
    assert root.error_info is not None
    assert root.error_info.error_type == "ActionAbortedError"
    assert "enough" in root.error_info.message
    assert _names(remote.Run.listall(in_phase=["aborted"])) == [run.name]


def test_hybrid_runs_are_recorded_and_local_runs_stay_in_their_process(
    redis_client: Any, worker_factory: WorkerFactory
) -> None:
    worker_factory.start(concurrency=1)
    hybrid = flyte.with_runcontext(mode="hybrid").run(run_views.all_good, 2)
    assert hybrid.outputs().o0 == 2 * run_views.FAIL_EVERY
    assert [(a.task_name, a.phase) for a in hybrid.actions()] == [
        ("run_views.all_good", SUCCEEDED), ("run_views.leaf", SUCCEEDED), ("run_views.leaf", SUCCEEDED),
    ]  # fmt: skip
    assert hybrid.details().mode == "hybrid"

    local = flyte.with_runcontext(mode="local").run(run_views.all_good, 1)
    found = remote.Run.get(local.name)  # found in this process, without asking the cluster
    assert found.outputs().o0 == 0
    with pytest.raises(RunNotFoundError, match="ran in this process"):
        found.actions()
    assert _names(remote.Run.listall()) == [hybrid.name]
