"""The type engine in every mode: inputs and outputs converted by their declared types (as Flyte converts them),
values that do not fit refused with a `TypeError` naming the task and the parameter, and Flyte's error classes at
the caller."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import flyte_celery as flyte
from flyte_celery.errors import RunNotFoundError, RuntimeUserError
from flyte_celery.io import DataFrame, Dir, File
from tests.behaviour.conftest import Runner
from tests.behaviour.programs import types
from tests.behaviour.programs._files import read_lines

UTC = dt.timezone.utc
NAIVE = dt.datetime(2024, 5, 1, 12, 30, 15, 123456)
PLUS_TWO = dt.datetime(2024, 5, 1, 14, 30, 15, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
IN_UTC = dt.datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
ORDER = types.Order(item="tea", quantity=2, placed=IN_UTC)

# (echo task, value passed, value expected back): the expected value's type is checked too.
ROUND_TRIPS: list[tuple[str, Any, Any]] = [
    ("int", 7, 7),
    ("float", 2.5, 2.5),
    ("float", 3, 3.0),
    ("str", "héllo", "héllo"),
    ("bool", True, True),
    ("bytes", b"\x00\xff", b"\x00\xff"),
    ("none", None, None),
    ("datetime", NAIVE, IN_UTC),
    ("datetime", PLUS_TWO, IN_UTC),
    ("datetime", IN_UTC, IN_UTC),
    ("date", dt.date(2024, 2, 29), dt.date(2024, 2, 29)),
    ("date", dt.datetime(2024, 2, 29, 23, 59), dt.date(2024, 2, 29)),
    ("timedelta", dt.timedelta(days=1, microseconds=5), dt.timedelta(days=1, microseconds=5)),
    ("color", types.Color.GREEN, types.Color.GREEN),
    ("color", "GREEN", types.Color.GREEN),
    ("size", "large", "large"),
    ("floats", [1, 2.5], [1.0, 2.5]),
    ("times", {"start": NAIVE}, {"start": IN_UTC}),
    ("pair", (1, "a"), (1, "a")),
    ("pair", [1, "a"], (1, "a")),
    ("optional", None, None),
    ("optional", 4, 4),
    ("union", 1, 1.0),
    ("union", "x", "x"),
    ("point", types.Point(1.0, 2.0), types.Point(1.0, 2.0)),
    ("point", {"x": 1, "y": 2.5}, types.Point(1.0, 2.5)),
    ("order", ORDER, ORDER),
    ("order", {"item": "tea", "quantity": "2", "placed": "2024-05-01T12:30:15.123456Z"}, ORDER),
    ("opaque", types.Opaque(3), types.Opaque(3)),
    ("file", File(path="/data/in.csv"), File(path="/data/in.csv")),
    ("dir", Dir(path="/data/"), Dir(path="/data/")),
    ("frame", DataFrame(uri="/data/table.parquet"), DataFrame(uri="/data/table.parquet")),
    ("sync-datetime", NAIVE, IN_UTC),
]
ROUND_TRIP_IDS = [f"{kind}-{type(value).__name__}-{index}" for index, (kind, value, _) in enumerate(ROUND_TRIPS)]


def assert_same(result: Any, expected: Any) -> None:
    assert result == expected
    assert type(result) is type(expected)
    if isinstance(expected, dict):
        for key, value in expected.items():
            assert_same(result[key], value)
    if isinstance(expected, (list, tuple)):
        for got, wanted in zip(result, expected, strict=True):
            assert_same(got, wanted)
    if isinstance(expected, dt.datetime):
        assert result.tzinfo == expected.tzinfo  # aware datetimes compare equal across timezones: check it is UTC
    if isinstance(expected, types.Point):
        assert type(result.x) is float


@pytest.mark.parametrize(("kind", "value", "expected"), ROUND_TRIPS, ids=ROUND_TRIP_IDS)
def test_a_root_input_and_output_are_converted_by_their_types(
    runner: Runner, kind: str, value: Any, expected: Any
) -> None:
    outputs = runner(types.ECHOES[kind], value).outputs()

    # A `tuple[int, str]` output is two outputs, o0 and o1, as in Flyte.
    assert_same(outputs[0] if len(outputs) == 1 else tuple(outputs), expected)


@pytest.mark.parametrize(("kind", "value", "expected"), ROUND_TRIPS, ids=ROUND_TRIP_IDS)
def test_a_child_input_and_output_are_converted_by_their_types(
    runner: Runner, kind: str, value: Any, expected: Any
) -> None:
    # The parent's own input is `Any` (not converted): the conversion happens at the child call.
    assert_same(runner(types.via_child, kind, value).outputs()[0], expected)


def test_the_task_body_sees_the_converted_input(runner: Runner) -> None:
    seen = runner(types.inside, NAIVE).outputs()[0]

    assert seen == {"value": IN_UTC, "type": "datetime", "tzinfo": UTC}


def test_named_tuple_outputs_are_converted_field_by_field(runner: Runner) -> None:
    outs = runner(types.summarize, 3).outputs()

    assert (outs.n, outs.mean) == (3, 3.0)
    assert type(outs.mean) is float


def run_keys(redis_url: str, run: str) -> list[bytes]:
    """Every Redis key of `run` (they all hold `{<run>}`)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return list(client.scan_iter(match=f"*{{{run}}}*"))
    finally:
        client.close()


def test_a_bad_root_input_raises_type_error_before_anything_runs(
    runner: Runner, mode: str, tmp_path: Path, run_name: Callable[[str], str], request: pytest.FixtureRequest
) -> None:
    name = run_name("bad-root-input")
    marker = tmp_path / "ran"

    with pytest.raises(TypeError) as info:
        runner(types.record_and_double, str(marker), "two", name=name)

    assert not isinstance(info.value, RuntimeUserError)
    assert types.record_and_double.name in str(info.value)
    assert "input 'n'" in str(info.value)
    with pytest.raises(RunNotFoundError):
        flyte.Run.get(name)
    assert not marker.exists()
    if mode != "local":  # no run record, nothing enqueued: the launcher writes both before it publishes
        assert run_keys(request.getfixturevalue("behaviour_cluster").redis_url, name) == []
    # The name is still free, and a run with good inputs leaves the keys looked for above.
    assert runner(types.record_and_double, str(marker), 2, name=name).outputs()[0] == 4
    if mode != "local":
        assert run_keys(request.getfixturevalue("behaviour_cluster").redis_url, name)


def test_a_bad_child_input_fails_the_parent_with_a_type_error_code(runner: Runner) -> None:
    with pytest.raises(RuntimeUserError) as info:
        runner(types.passes_a_str_to_an_int_child).outputs()

    assert info.value.code == "TypeError"
    assert types.echo_int.name in str(info.value)
    assert "input 'x'" in str(info.value)
    assert info.value.task_name == types.passes_a_str_to_an_int_child.name  # raised in the parent, at the call


@pytest.mark.parametrize(
    ("parent", "child"),
    [(types.catches_a_bad_child_call, types.echo_int), (types.sync_catches_a_bad_child_call, types.echo_sync_int)],
    ids=["async", "sync"],
)
def test_a_bad_child_input_raises_type_error_at_the_call_site(runner: Runner, parent: Any, child: Any) -> None:
    seen = runner(parent).outputs()[0]

    assert seen["type"] == "TypeError"
    assert f"task {child.name!r}: type conversion failed for input 'x'" in seen["message"]


@pytest.mark.parametrize(
    ("task", "output"),
    [
        (types.returns_a_str_for_an_int, "output 'o0'"),
        (types.returns_three_values_for_two_outputs, "expected 2 outputs (o0, o1)"),
        (types.returns_a_value_for_none, "output 'o0'"),
    ],
    ids=["wrong-type", "wrong-count", "value-for-none"],
)
def test_a_bad_output_fails_the_task_with_a_type_error_code(runner: Runner, task: Any, output: str) -> None:
    with pytest.raises(RuntimeUserError) as info:
        runner(task).outputs()

    assert info.value.code == "TypeError"
    assert task.name in str(info.value)
    assert output in str(info.value)
    assert info.value.task_name == task.name


def test_a_parent_sees_a_bad_child_output_as_runtime_user_error(runner: Runner) -> None:
    seen = runner(types.catches_a_bad_child_output).outputs()[0]

    assert seen["type"] == "RuntimeUserError"
    assert seen["code"] == "TypeError"
    assert "output 'o0'" in seen["message"]


def test_a_childs_non_recoverable_error_reaches_the_caller_as_runtime_user_error(
    runner: Runner, tmp_path: Path
) -> None:
    log = tmp_path / "attempts"

    seen = runner(types.catches_a_non_recoverable_child, str(log)).outputs()[0]

    assert seen == {"is_user_error": True, "code": "NonRecoverableError", "message": "cannot go on"}
    assert read_lines(str(log)) == ["child"]  # its retries were not used


def test_a_non_recoverable_error_passing_through_a_parent_ends_the_run(runner: Runner, tmp_path: Path) -> None:
    # As Flyte's main branch: the parent receives a NonRecoverableError, so it is not retried either.
    log = tmp_path / "attempts"

    with pytest.raises(RuntimeUserError) as info:
        runner(types.does_not_catch_a_non_recoverable_child, str(log)).outputs()

    assert info.value.code == "NonRecoverableError"
    assert read_lines(str(log)) == ["parent", "child"]
