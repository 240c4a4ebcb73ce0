"""Outputs converted by a task's declared output types, and interfaces that keep their converters to themselves
when a task is pickled into a code bundle."""

from __future__ import annotations

import datetime as dt
import pickle
from typing import Any, NamedTuple

import cloudpickle
import pytest

import flyte_celery as flyte
from flyte_celery._action_call import bind_inputs

env = flyte.TaskEnvironment("unit-types-outputs")


class Stats(NamedTuple):
    total: int
    mean: float


class Only(NamedTuple):
    value: float


@env.task
async def one_float() -> float:
    return 1.0


@env.task
async def nothing() -> None:
    return None


@env.task
async def unannotated():  # type: ignore[no-untyped-def]
    return "anything"


@env.task
async def pair() -> tuple[int, str]:
    return 1, "a"


@env.task
async def stats() -> Stats:
    return Stats(1, 2.0)


@env.task
async def only() -> Only:
    return Only(1.0)


@env.task
async def when() -> dt.datetime:
    return dt.datetime(2024, 1, 1)


async def scaled(n: float) -> float:
    return n


def outputs_of(task: Any, value: Any) -> Any:
    return task.interface.convert_outputs(value, task.name)


def test_a_single_output_is_converted() -> None:
    assert outputs_of(one_float, 1) == 1.0
    assert type(outputs_of(one_float, 1)) is float
    assert outputs_of(when, dt.datetime(2024, 1, 1)).tzinfo is dt.timezone.utc


def test_a_task_annotated_none_must_return_none() -> None:
    assert outputs_of(nothing, None) is None
    with pytest.raises(TypeError, match=r"task 'unit-types-outputs.nothing': .* output 'o0': expected None, got int"):
        outputs_of(nothing, 5)


def test_a_task_without_a_return_annotation_is_not_checked() -> None:
    marker = object()
    assert outputs_of(unannotated, marker) is marker


def test_tuple_outputs_are_converted_one_by_one() -> None:
    assert outputs_of(pair, [1, "a"]) == (1, "a")
    with pytest.raises(TypeError, match="output 'o1': expected str, got int 2"):
        outputs_of(pair, (1, 2))
    with pytest.raises(TypeError, match=r"returned 3 values, expected 2 outputs \(o0, o1\)"):
        outputs_of(pair, (1, "a", "b"))
    with pytest.raises(TypeError, match=r"returned int, expected 2 outputs"):
        outputs_of(pair, 1)


def test_named_tuple_outputs_are_named_tuples_with_converted_fields() -> None:
    result = outputs_of(stats, (1, 2))

    assert result == Stats(1, 2.0)
    assert type(result) is Stats
    assert type(result.mean) is float
    with pytest.raises(TypeError, match="output 'total'"):
        outputs_of(stats, Stats("one", 2.0))  # type: ignore[arg-type]


def test_a_single_field_named_tuple_is_one_output() -> None:
    assert outputs_of(only, Only(1)) == Only(1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="output 'value'"):
        outputs_of(only, Only("x"))  # type: ignore[arg-type]


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_an_interface_is_pickled_without_its_converters(dumps: Any) -> None:
    task = env.task(scaled)
    bind_inputs(task, (1,), {})  # builds the converters, which the interface keeps
    assert "_task_values" in task.interface.__dict__

    copy = pickle.loads(dumps(task.interface))

    assert "_task_values" not in copy.__dict__
    assert copy == task.interface
    assert copy.convert_inputs({"n": 2}, task.name) == {"n": 2.0}
