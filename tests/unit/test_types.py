"""The type engine's converters: what each declared type accepts, what it refuses and what it converts to, with
the errors naming the task and the input (see `flyte_celery/_types/` for where Flyte's behaviour was followed)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import typing
from typing import Annotated, Any, Literal, NamedTuple, Optional, Union

import pydantic
import pytest
from typing_extensions import TypedDict

import flyte_celery as flyte
from flyte_celery._action_call import bind_inputs
from flyte_celery._types import converter_for

UTC = dt.timezone.utc
NAIVE = dt.datetime(2024, 5, 1, 12, 30, 15, 123456)
IN_UTC = NAIVE.replace(tzinfo=UTC)
PLUS_TWO = dt.datetime(2024, 5, 1, 14, 30, 15, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))

env = flyte.TaskEnvironment("unit-types")


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1


@dataclasses.dataclass
class Point:
    x: float
    y: float
    label: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Stamped:
    when: dt.datetime
    tags: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Tree:
    value: int
    children: list[Tree] = dataclasses.field(default_factory=list)


class Order(pydantic.BaseModel):
    item: str
    quantity: int


T = typing.TypeVar("T")


class Ref(pydantic.BaseModel, typing.Generic[T]):
    path: str


class Pair(NamedTuple):
    left: int
    right: float


class Movie(TypedDict):
    title: str
    year: int


class StrColor(str, enum.Enum):
    BLUE = "blue"


def convert(hint: Any, value: Any) -> Any:
    return converter_for(hint)(value)


def same(result: Any, expected: Any) -> bool:
    return bool(result == expected) and type(result) is type(expected)


@pytest.mark.parametrize(
    ("hint", "value", "expected"),
    [
        (int, 3, 3),
        (int, Level.LOW, 1),
        (float, 2.5, 2.5),
        (float, 3, 3.0),
        (str, "s", "s"),
        (str, StrColor.BLUE, "blue"),
        (bool, False, False),
        (bytes, b"\x00", b"\x00"),
        (None, None, None),
        (type(None), None, None),
        (dt.date, dt.date(2024, 2, 29), dt.date(2024, 2, 29)),
        (dt.date, dt.datetime(2024, 2, 29, 23, 59, tzinfo=UTC), dt.date(2024, 2, 29)),
        (dt.timedelta, dt.timedelta(seconds=1.5), dt.timedelta(seconds=1.5)),
        (Any, object, object),
        (object, "anything", "anything"),
    ],
)
def test_simple_types_accept_and_convert(hint: Any, value: Any, expected: Any) -> None:
    assert same(convert(hint, value), expected)


@pytest.mark.parametrize(
    ("hint", "value"),
    [
        (int, True),
        (int, 3.0),
        (int, "3"),
        (int, None),
        (float, True),
        (float, "2.5"),
        (str, 1),
        (str, b"s"),
        (bool, 1),
        (bool, "true"),
        (bytes, "s"),
        (bytes, bytearray(b"s")),
        (None, 0),
        (dt.datetime, dt.date(2024, 1, 1)),
        (dt.datetime, "2024-01-01T00:00:00"),
        (dt.date, "2024-01-01"),
        (dt.timedelta, 3),
    ],
)
def test_simple_types_refuse_values_of_other_types(hint: Any, value: Any) -> None:
    with pytest.raises(TypeError):
        convert(hint, value)


def test_a_naive_datetime_becomes_utc_with_the_same_wall_clock() -> None:
    result = convert(dt.datetime, NAIVE)

    assert result == IN_UTC
    assert result.tzinfo is UTC


def test_an_aware_datetime_is_converted_to_utc() -> None:
    result = convert(dt.datetime, PLUS_TWO)

    assert (result.hour, result.tzinfo) == (12, UTC)
    assert result == PLUS_TWO


def test_a_datetime_subclass_becomes_a_plain_utc_datetime() -> None:
    class Stamp(dt.datetime):
        pass

    result = convert(dt.datetime, Stamp(2024, 5, 1, 12, 30, 15, 123456))

    assert same(result, IN_UTC)


def test_enum_takes_members_and_member_names() -> None:
    assert convert(Color, Color.GREEN) is Color.GREEN
    assert convert(Color, "GREEN") is Color.GREEN
    assert convert(Level, Level.LOW) is Level.LOW


@pytest.mark.parametrize("value", ["green", "BLUE", 1, StrColor.BLUE, None])
def test_enum_refuses_values_names_of_nothing_and_other_enums(value: Any) -> None:
    # A member's value is not enough, as in Flyte, which stores enums by name.
    with pytest.raises(TypeError):
        convert(Color, value)


def test_literal_takes_the_listed_values_only() -> None:
    assert convert(Literal["a", "b"], "b") == "b"
    assert convert(Literal[1, 2], 2) == 2
    assert convert(Literal[Color.RED], Color.RED) is Color.RED
    for hint, value in [(Literal["a", "b"], "c"), (Literal[1], True), (Literal[1], 1.0), (Literal[True], 1)]:
        with pytest.raises(TypeError):
            convert(hint, value)


def test_list_converts_every_element() -> None:
    assert same(convert(list[float], [1, 2.5]), [1.0, 2.5])
    assert convert(list[dt.datetime], [NAIVE]) == [IN_UTC]
    assert convert(list[list[int]], [[1], []]) == [[1], []]
    assert convert(list, [1, "a"]) == [1, "a"]
    assert convert(typing.List[int], [1]) == [1]  # noqa: UP006


@pytest.mark.parametrize(("hint", "value"), [(list[int], (1, 2)), (list[float], [1, "x"]), (list, "ab")])
def test_list_refuses_other_sequences_and_bad_elements(hint: Any, value: Any) -> None:
    with pytest.raises(TypeError):
        convert(hint, value)


def test_dict_converts_keys_and_values() -> None:
    assert convert(dict[str, dt.datetime], {"a": NAIVE}) == {"a": IN_UTC}
    assert same(convert(dict[str, list[float]], {"a": [1]})["a"][0], 1.0)
    assert convert(dict[int, str], {1: "a"}) == {1: "a"}
    assert convert(dict, {"a": object}) == {"a": object}


@pytest.mark.parametrize(
    ("hint", "value"), [(dict[str, int], {1: 1}), (dict[str, int], {"a": "x"}), (dict[str, int], [("a", 1)])]
)
def test_dict_refuses_bad_keys_values_and_non_dicts(hint: Any, value: Any) -> None:
    with pytest.raises(TypeError):
        convert(hint, value)


def test_tuple_takes_tuples_and_lists_of_its_length() -> None:
    assert same(convert(tuple[int, str], (1, "a")), (1, "a"))
    assert same(convert(tuple[int, str], [1, "a"]), (1, "a"))
    assert same(convert(tuple[float, ...], [1, 2]), (1.0, 2.0))
    assert convert(tuple, (1, "x")) == (1, "x")
    for value in [(1, 2), (1,), (1, "a", "b"), "ab"]:
        with pytest.raises(TypeError):
            convert(tuple[int, str], value)


def test_a_datetime_in_a_tuple_keeps_its_timezone_as_in_flyte() -> None:
    # Flyte moves tuples and records through pydantic/msgpack, which keep a naive datetime naive.
    assert convert(tuple[dt.datetime, int], (NAIVE, 1))[0].tzinfo is None


def test_optional_and_union_try_members_in_order() -> None:
    assert convert(Optional[int], None) is None
    assert convert(Optional[int], 3) == 3
    assert convert(int | None, 3) == 3
    assert same(convert(Union[float, str], 1), 1.0)  # no exact member: the first that accepts it
    assert same(convert(Union[float, int], 1), 1)  # the exact type wins
    assert same(convert(Union[str, dt.datetime], NAIVE), IN_UTC)
    assert convert(Union[int, Any], "x") == "x"
    for hint, value in [(Optional[int], "x"), (Union[int, str], 1.5), (Union[int, str], True)]:
        with pytest.raises(TypeError):
            convert(hint, value)


def test_union_members_keep_their_order_although_unions_compare_equal_in_any_order() -> None:
    assert same(convert(Union[str, Level], "LOW"), "LOW")
    assert same(convert(Union[Level, str], "LOW"), "LOW")  # the exact type wins
    assert convert(Union[Color, Literal["RED"]], "RED") is Color.RED
    assert convert(Union[Literal["RED"], Color], "RED") == "RED"


def test_annotated_and_new_type_convert_as_their_underlying_type() -> None:
    user_id = typing.NewType("user_id", int)

    assert same(convert(Annotated[float, "metres"], 1), 1.0)
    with pytest.raises(TypeError):
        convert(user_id, "1")


def test_dataclass_instance_fields_are_converted_into_a_copy() -> None:
    point = Point(1, 2.0)  # type: ignore[arg-type]

    result = convert(Point, point)

    assert result == Point(1.0, 2.0)
    assert type(result.x) is float
    assert type(point.x) is int  # the caller's object is not touched


def test_an_unchanged_dataclass_instance_is_passed_as_it_is() -> None:
    point = Point(1.0, 2.0)

    assert convert(Point, point) is point


def test_a_frozen_dataclass_is_converted_and_its_datetime_keeps_its_timezone() -> None:
    stamped = convert(Stamped, Stamped(NAIVE, ["a"]))

    assert stamped.when.tzinfo is None  # as Flyte's msgpack encoding of dataclasses keeps it
    with pytest.raises(TypeError, match=r"\.tags\[0\]"):
        convert(Stamped, Stamped(NAIVE, [1]))  # type: ignore[list-item]


def test_a_dict_is_validated_into_a_dataclass() -> None:
    assert convert(Point, {"x": 1, "y": 2.5}) == Point(1.0, 2.5)
    assert convert(Tree, {"value": 1, "children": [{"value": 2}]}) == Tree(1, [Tree(2)])


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"x": 1}, "missing field"),
        ({"x": 1, "y": 2, "z": 3}, "unknown field"),
        ({"x": "1", "y": 2}, "expected float"),
        ("x=1", "expected Point"),
    ],
)
def test_a_dataclass_refuses_dicts_that_do_not_fit(value: Any, reason: str) -> None:
    with pytest.raises(TypeError, match=reason):
        convert(Point, value)


def test_a_recursive_dataclass_is_checked_all_the_way_down() -> None:
    with pytest.raises(TypeError, match=r"\.children\[0\]\.value"):
        convert(Tree, Tree(1, [Tree("two")]))  # type: ignore[arg-type]


def test_pydantic_models_take_instances_and_validate_dicts() -> None:
    order = Order(item="tea", quantity=2)

    assert convert(Order, order) is order
    assert convert(Order, {"item": "tea", "quantity": "2"}) == order  # lax validation, as Flyte
    with pytest.raises(TypeError, match="quantity"):
        convert(Order, {"item": "tea", "quantity": "two"})
    with pytest.raises(TypeError):
        convert(Order, "tea")


def test_a_parametrized_generic_model_takes_instances_of_its_generic_class() -> None:
    # As `flyte_celery.io.File[pd.DataFrame]` takes any `File`: pydantic makes `Ref[int]` a subclass of `Ref`.
    ref = Ref(path="/x")

    assert convert(Ref[int], ref) is ref
    assert type(convert(Ref[int], {"path": "/y"})) is Ref[int]
    with pytest.raises(TypeError):
        convert(Ref[int], Order(item="tea", quantity=1))


def test_named_tuples_take_instances_tuples_and_lists() -> None:
    assert same(convert(Pair, Pair(1, 2)), Pair(1, 2.0))  # type: ignore[arg-type]
    assert same(convert(Pair, (1, 2.5)), Pair(1, 2.5))
    with pytest.raises(TypeError, match=r"\.right"):
        convert(Pair, (1, "x"))


def test_typed_dicts_check_their_keys() -> None:
    assert convert(Movie, {"title": "Up", "year": 2009, "extra": 1}) == {"title": "Up", "year": 2009}
    with pytest.raises(TypeError, match="missing key"):
        convert(Movie, {"title": "Up"})
    with pytest.raises(TypeError, match=r"\.year"):
        convert(Movie, {"title": "Up", "year": "2009"})


def test_unresolvable_forward_references_are_not_checked() -> None:
    assert convert("NoSuchClass", 1) == 1
    assert convert(typing.TypeVar("T"), 1) == 1


@env.task
async def takes(
    n: int,
    xs: list[float],
    when: dt.datetime,
    tag: str = "t",
    note: str = None,  # type: ignore[assignment]  # noqa: RUF013  # the implicit Optional of older typing
) -> int:
    return n


def test_bound_inputs_are_converted_and_copied() -> None:
    xs = [1, 2]

    inputs = bind_inputs(takes, (1, xs, NAIVE), {})

    assert inputs == {"n": 1, "xs": [1.0, 2.0], "when": IN_UTC, "tag": "t", "note": None}
    assert xs == [1, 2]


@pytest.mark.parametrize(
    ("args", "where"),
    [
        ((True, [], NAIVE), "input 'n': expected int, got bool True"),
        ((1, [1, "x"], NAIVE), "input 'xs'[1]: expected float, got str 'x'"),
        ((1, [], "2024-01-01"), "input 'when': expected datetime"),
    ],
)
def test_a_value_that_does_not_fit_is_a_type_error_naming_task_and_input(args: tuple[Any, ...], where: str) -> None:
    with pytest.raises(TypeError) as info:
        bind_inputs(takes, args, {})

    assert str(info.value).startswith(f"task {takes.name!r}: type conversion failed for {where}")


def test_a_task_called_outside_a_run_is_a_plain_call_without_conversion() -> None:
    assert asyncio.run(takes("not an int", [], NAIVE)) == "not an int"  # type: ignore[arg-type]


def test_a_none_default_accepts_none_whatever_the_annotation() -> None:
    assert bind_inputs(takes, (1, [], NAIVE), {"note": None})["note"] is None
    with pytest.raises(TypeError, match="input 'tag'"):
        bind_inputs(takes, (1, [], NAIVE), {"tag": None})
