"""`@flyte.trace` helpers (sync, async, generators) and `flyte.group` blocks inside tasks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import flyte_celery as flyte
from flyte_celery.errors import TraceDoesNotAllowNestedTasksError
from tests.behaviour.conftest import Runner
from tests.behaviour.programs import tracing


@pytest.fixture
def traced(runner: Runner) -> dict[str, Any]:
    seen: dict[str, Any] = runner(tracing.use_async_traces).outputs()[0]
    return seen


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_trace_returns_the_functions_value(traced: dict[str, Any], kind: str) -> None:
    assert traced[kind]["value"] == 6


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_trace_runs_as_its_own_action_of_the_task(traced: dict[str, Any], kind: str) -> None:
    task_action = traced["task"]["action"]

    assert traced[kind]["action"] != task_action
    assert traced[kind]["task_action"] == task_action


def test_generator_traces_yield_every_item_under_a_trace_action(traced: dict[str, Any]) -> None:
    task_action = traced["task"]["action"]

    for kind in ("generator", "async_generator"):
        items = traced[kind]
        assert [item["value"] for item in items] == [0, 1]
        assert all(item["action"] != task_action for item in items)
        assert all(item["task_action"] == task_action for item in items)


def test_repeated_trace_calls_are_distinct_actions(traced: dict[str, Any]) -> None:
    assert traced["async"]["action"] != traced["async_again"]["action"]


def test_task_action_is_back_after_the_traces(traced: dict[str, Any]) -> None:
    assert traced["after"] == traced["task"]
    assert traced["task"]["action"] == traced["task"]["task_action"]


def test_traces_in_a_sync_task(runner: Runner) -> None:
    seen = runner(tracing.use_sync_traces).outputs()[0]

    assert seen["sync"]["value"] == 15
    assert seen["sync"]["action"] != seen["task"]["action"]
    assert seen["sync"]["task_action"] == seen["task"]["action"]
    assert [item["value"] for item in seen["generator"]] == [0]
    assert seen["after"] == seen["task"]


def test_task_call_inside_a_trace_raises(runner: Runner) -> None:
    assert runner(tracing.nest_task_in_trace).outputs()[0] == "TraceDoesNotAllowNestedTasksError"


def test_errors_in_a_trace_reach_the_task_unchanged(runner: Runner) -> None:
    assert runner(tracing.catch_trace_failure).outputs()[0] == "KeyError 1"


def test_uncaught_task_call_inside_a_trace_fails_the_run(runner: Runner) -> None:
    with pytest.raises(TraceDoesNotAllowNestedTasksError):
        runner(tracing.nest_task_in_trace_uncaught).outputs()


def test_traces_outside_a_task_are_plain_calls() -> None:
    async def collect() -> list[int]:
        return [i async for i in tracing.outside_async_generator(2)]

    assert tracing.outside_sync(1) == (2, False)
    assert asyncio.run(tracing.outside_async(1)) == (2, False)
    assert list(tracing.outside_generator(3)) == [0, 1, 2]
    assert asyncio.run(collect()) == [0, 1]
    assert tracing.outside_sync.__name__ == "outside_sync"


def test_group_name_must_not_be_empty() -> None:
    with pytest.raises(ValueError):
        with flyte.group(""):
            pass


def test_groups_nest_and_restore(runner: Runner) -> None:
    seen = runner(tracing.use_groups).outputs()[0]

    assert seen["before"] is None
    assert seen["outer"] == "outer"
    assert seen["inner"] == "inner"
    assert seen["back_to_outer"] == "outer"
    assert seen["after"] is None
    assert seen["outer_result"] == 3
    assert seen["child_sees"] is None
