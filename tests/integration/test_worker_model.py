"""The worker model: parents never hold a slot while they wait, and CPU-bound leaves use every core."""

from __future__ import annotations

import pytest

import flyte_celery as flyte
from tests._workers import WorkerFactory
from tests.integration.programs import trees

RUN_DEADLINE_S = 60.0


def test_depth_4_fanout_3_tree_completes_on_one_single_slot_worker(worker_factory: WorkerFactory) -> None:
    worker_factory.start(concurrency=1)
    run = flyte.with_runcontext(mode="remote").run(trees.tree, 4, 3)
    assert run.wait(timeout=RUN_DEADLINE_S) == flyte.ActionPhase.SUCCEEDED
    assert run.outputs().o0 == 3**4


@pytest.mark.slow
def test_twenty_concurrent_runs_of_fifty_children_complete_on_two_single_slot_workers(
    worker_factory: WorkerFactory,
) -> None:
    worker_factory.start(concurrency=1)
    worker_factory.start(concurrency=1)
    runs = [flyte.with_runcontext(mode="remote").run(trees.fan, 50) for _ in range(20)]
    for run in runs:
        assert run.wait(timeout=RUN_DEADLINE_S) == flyte.ActionPhase.SUCCEEDED, run.name
        assert run.outputs().o0 == sum(range(50))


def test_two_cpu_bound_leaves_run_in_parallel_with_the_default_worker_command(worker_factory: WorkerFactory) -> None:
    worker_factory.start(concurrency=None)  # Celery's default: one pool process per core
    seconds = 1.0
    run = flyte.with_runcontext(mode="remote").run(trees.two_spins, seconds)
    assert run.wait(timeout=RUN_DEADLINE_S) == flyte.ActionPhase.SUCCEEDED
    (pid_a, start_a, end_a), (pid_b, start_b, end_b) = run.outputs().o0
    assert pid_a != pid_b
    overlap = min(end_a, end_b) - max(start_a, start_b)
    assert overlap > 0.5 * seconds, f"leaves overlapped {overlap:.2f}s of {seconds}s"
