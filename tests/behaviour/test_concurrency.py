"""Fan-out: children of one parent run concurrently; `flyte.map` in sync and async tasks; concurrency bounds.

Concurrency is counted, never timed: children report how many of them they saw in flight at once (see
`programs/concurrency.py`), and the tests assert on those counts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flyte_celery.errors import RuntimeUserError
from tests.behaviour.conftest import CLUSTER_CONCURRENCY, Runner
from tests.behaviour.programs import concurrency

# Wider than the cluster's worker slots, so children of the Celery modes also queue for one.
FAN_OUT = 20
# How many children must be in flight at once: every slot of the cluster, as leaves hold theirs while running.
ALL_AT_ONCE = CLUSTER_CONCURRENCY
# A bound below ALL_AT_ONCE, and more children than it, so that the bound is what holds the rest back.
BOUND = 2
BOUNDED_FAN_OUT = 5


@pytest.mark.parametrize(
    "task",
    [concurrency.gather_probes, concurrency.create_task_probes, concurrency.as_completed_probes],
    ids=["gather", "create_task", "as_completed"],
)
def test_children_run_concurrently(runner: Runner, task: object, tmp_path: Path) -> None:
    seen = runner(task, str(tmp_path), FAN_OUT, ALL_AT_ONCE).outputs()[0]

    assert len(seen) == FAN_OUT
    assert max(seen) >= ALL_AT_ONCE, seen  # local mode may run all of them at once


def test_gather_keeps_the_argument_order(runner: Runner, tmp_path: Path) -> None:
    # The children finish last-to-first, so results in completion order would come back reversed.
    seen = runner(concurrency.gather_finishing_in_reverse, str(tmp_path), ALL_AT_ONCE).outputs()[0]

    assert seen == list(range(ALL_AT_ONCE))


def test_gathered_children_all_run_at_once(runner: Runner, tmp_path: Path) -> None:
    seen = runner(concurrency.gather_probes, str(tmp_path), ALL_AT_ONCE, ALL_AT_ONCE).outputs()[0]

    assert seen == [ALL_AT_ONCE] * ALL_AT_ONCE


def test_gather_with_return_exceptions_yields_the_childs_error(runner: Runner) -> None:
    assert runner(concurrency.gather_with_failures).outputs()[0] == [4, ("RuntimeUserError", "ValueError"), 16]


def test_map_in_a_sync_task(runner: Runner) -> None:
    assert runner(concurrency.map_sync, [1, 2, 3, 4]).outputs()[0] == [1, 4, 9, 16]


def test_map_aio_in_an_async_task(runner: Runner) -> None:
    assert runner(concurrency.map_async, [1, 2, 3, 4]).outputs()[0] == [1, 4, 9, 16]


def test_map_of_nothing(runner: Runner) -> None:
    assert runner(concurrency.map_async, []).outputs()[0] == []
    assert runner(concurrency.map_sync, []).outputs()[0] == []


@pytest.mark.parametrize("task", [concurrency.map_sync_partial, concurrency.map_async_partial], ids=["sync", "aio"])
def test_map_of_a_partial(runner: Runner, task: object) -> None:
    assert runner(task, [1, 2, 3], 100).outputs()[0] == [101, 102, 103]


def test_map_zips_several_iterables(runner: Runner) -> None:
    assert runner(concurrency.map_async_two_iterables, [1, 2, 3], [10, 20, 30]).outputs()[0] == [11, 22, 33]


@pytest.mark.parametrize("task", [concurrency.map_sync_errors, concurrency.map_async_errors], ids=["sync", "aio"])
def test_map_yields_errors_in_place_by_default(runner: Runner, task: object) -> None:
    error = ("RuntimeUserError", "ValueError")

    assert runner(task, [0, 1, 2, 3]).outputs()[0] == [0, error, 2, error]


@pytest.mark.parametrize("task", [concurrency.map_sync_raising, concurrency.map_async_raising], ids=["sync", "aio"])
def test_map_without_return_exceptions_raises(runner: Runner, task: object) -> None:
    assert runner(task, [0, 1, 2]).outputs()[0] == ["raised", "RuntimeUserError", "ValueError"]


def test_uncaught_map_failure_fails_the_run(runner: Runner) -> None:
    with pytest.raises(RuntimeUserError) as info:
        runner(concurrency.map_async_uncaught, [0, 1]).outputs()

    assert info.value.code == "ValueError"


def test_blocking_map_from_async_code_is_refused(runner: Runner) -> None:
    assert runner(concurrency.map_from_async_without_aio).outputs()[0] == "SyncTaskCallInAsyncContextError"


@pytest.mark.parametrize("task", [concurrency.map_sync_bounded, concurrency.map_async_bounded], ids=["sync", "aio"])
def test_map_concurrency_bounds_running_children(runner: Runner, task: object, tmp_path: Path) -> None:
    seen = runner(task, str(tmp_path), BOUNDED_FAN_OUT, BOUND).outputs()[0]

    assert len(seen) == BOUNDED_FAN_OUT
    assert max(seen) == BOUND, seen


def test_map_without_a_bound_runs_children_concurrently(runner: Runner, tmp_path: Path) -> None:
    seen = runner(concurrency.map_async_unbounded, str(tmp_path), ALL_AT_ONCE).outputs()[0]

    assert seen == [ALL_AT_ONCE] * ALL_AT_ONCE


def test_max_action_concurrency_bounds_a_parents_children(runner: Runner, tmp_path: Path) -> None:
    run_bound = {"max_action_concurrency": BOUND}
    seen = runner(concurrency.probes_under_run_bound, str(tmp_path), BOUNDED_FAN_OUT, BOUND, **run_bound).outputs()[0]

    assert len(seen) == BOUNDED_FAN_OUT
    assert max(seen) == BOUND, seen
