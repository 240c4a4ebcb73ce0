"""Fan-out: children of one parent run concurrently; `flyte.map` in sync and async tasks; concurrency bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from flyte_celery.errors import RuntimeUserError
from tests.behaviour.conftest import Runner
from tests.behaviour.programs import concurrency

FAN_OUT = 20
NAP_S = 0.2
# 20 naps of 0.2 s take 4 s one after the other; concurrent ones take ~0.2 s. The bound is generous on purpose.
CONCURRENT_BOUND_S = 2.0


@pytest.mark.parametrize(
    "task",
    [concurrency.gather_naps, concurrency.create_task_naps, concurrency.as_completed_naps],
    ids=["gather", "create_task", "as_completed"],
)
def test_children_run_concurrently(runner: Runner, task: object) -> None:
    seen = runner(task, FAN_OUT, NAP_S).outputs()[0]

    assert sorted(seen["results"]) == list(range(FAN_OUT))
    assert seen["elapsed"] < CONCURRENT_BOUND_S


def test_gather_keeps_the_argument_order(runner: Runner) -> None:
    assert runner(concurrency.gather_naps, 5, 0.0).outputs()[0]["results"] == [0, 1, 2, 3, 4]


def test_gathered_children_all_run_at_once(runner: Runner, tmp_path: Path) -> None:
    assert runner(concurrency.gather_probes, str(tmp_path), 3).outputs()[0] == [3, 3, 3]


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
    seen = runner(task, str(tmp_path), 5, 2).outputs()[0]

    assert max(seen) == 2, seen


def test_map_without_a_bound_runs_children_concurrently(runner: Runner, tmp_path: Path) -> None:
    assert runner(concurrency.map_async_unbounded, str(tmp_path), 3).outputs()[0] == [3, 3, 3]


def test_max_action_concurrency_bounds_a_parents_children(runner: Runner, tmp_path: Path) -> None:
    seen = runner(concurrency.probes_under_run_bound, str(tmp_path), 4, 2, max_action_concurrency=2).outputs()[0]

    assert max(seen) == 2, seen
