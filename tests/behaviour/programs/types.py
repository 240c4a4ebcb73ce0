"""Tasks that take and return every type the type engine converts, parents passing them to children, and tasks
whose inputs or outputs do not fit their types."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Any, Literal, NamedTuple, Optional, Union

import pydantic

import flyte_celery as flyte
from flyte_celery.errors import NonRecoverableError, RuntimeUserError
from flyte_celery.io import DataFrame, Dir, File
from tests.behaviour.programs._files import append_line

env = flyte.TaskEnvironment("behaviour-types")


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclasses.dataclass
class Point:
    x: float
    y: float
    label: Optional[str] = None


class Order(pydantic.BaseModel):
    item: str
    quantity: int
    placed: dt.datetime


class Summary(NamedTuple):
    n: int
    mean: float


class Opaque:
    """A class the engine does not know: checked with isinstance and pickled."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


@env.task
async def echo_int(x: int) -> int:
    return x


@env.task
async def echo_float(x: float) -> float:
    return x


@env.task
async def echo_str(x: str) -> str:
    return x


@env.task
async def echo_bool(x: bool) -> bool:
    return x


@env.task
async def echo_bytes(x: bytes) -> bytes:
    return x


@env.task
async def echo_none(x: None) -> None:
    return x


@env.task
async def echo_datetime(x: dt.datetime) -> dt.datetime:
    return x


@env.task
async def echo_date(x: dt.date) -> dt.date:
    return x


@env.task
async def echo_timedelta(x: dt.timedelta) -> dt.timedelta:
    return x


@env.task
async def echo_color(x: Color) -> Color:
    return x


@env.task
async def echo_size(x: Literal["small", "large"]) -> Literal["small", "large"]:
    return x


@env.task
async def echo_floats(x: list[float]) -> list[float]:
    return x


@env.task
async def echo_times(x: dict[str, dt.datetime]) -> dict[str, dt.datetime]:
    return x


@env.task
async def echo_pair(x: tuple[int, str]) -> tuple[int, str]:
    return x


@env.task
async def echo_optional(x: Optional[int]) -> Optional[int]:
    return x


@env.task
async def echo_union(x: Union[float, str]) -> Union[float, str]:
    return x


@env.task
async def echo_point(x: Point) -> Point:
    return x


@env.task
async def echo_order(x: Order) -> Order:
    return x


@env.task
async def echo_opaque(x: Opaque) -> Opaque:
    return x


@env.task
async def echo_file(x: File) -> File:
    return x


@env.task
async def echo_dir(x: Dir) -> Dir:
    return x


@env.task
async def echo_frame(x: DataFrame) -> DataFrame:
    return x


@env.task
def echo_sync_datetime(x: dt.datetime) -> dt.datetime:
    return x


@env.task
async def summarize(count: int) -> Summary:
    return Summary(count, count)  # an int for the float output is converted, as Flyte does


ECHOES: dict[str, Any] = {
    "int": echo_int,
    "float": echo_float,
    "str": echo_str,
    "bool": echo_bool,
    "bytes": echo_bytes,
    "none": echo_none,
    "datetime": echo_datetime,
    "date": echo_date,
    "timedelta": echo_timedelta,
    "color": echo_color,
    "size": echo_size,
    "floats": echo_floats,
    "times": echo_times,
    "pair": echo_pair,
    "optional": echo_optional,
    "union": echo_union,
    "point": echo_point,
    "order": echo_order,
    "opaque": echo_opaque,
    "file": echo_file,
    "dir": echo_dir,
    "frame": echo_frame,
    "sync-datetime": echo_sync_datetime,
}


@env.task
async def via_child(kind: str, value: Any) -> Any:
    """Passes `value` (unchecked here: `Any`) to the echo task of `kind` and returns what the child returned."""
    return await ECHOES[kind].aio(value)


@env.task
async def inside(value: dt.datetime) -> dict[str, Any]:
    """What the body of a task sees: the converted input, before any output conversion."""
    return {"value": value, "type": type(value).__name__, "tzinfo": value.tzinfo}


@env.task
async def returns_a_str_for_an_int() -> int:
    return "not an int"  # type: ignore[return-value]


@env.task
async def returns_three_values_for_two_outputs() -> tuple[int, str]:
    return 1, "a", "extra"  # type: ignore[return-value]


@env.task
async def returns_a_value_for_none() -> None:
    return 5  # type: ignore[return-value]


@env.task
async def record_and_double(marker: str, n: int) -> int:
    """Writes `marker` when it runs: proof that it ran."""
    append_line(marker, str(n))
    return n * 2


@env.task
async def passes_a_str_to_an_int_child() -> int:
    return await echo_int("not an int")  # type: ignore[arg-type]


@env.task
async def catches_a_bad_child_call() -> dict[str, Any]:
    try:
        await echo_int("not an int")  # type: ignore[arg-type]
    except TypeError as err:
        return {"type": type(err).__name__, "message": str(err)}
    return {"type": None}


@env.task
def echo_sync_int(x: int) -> int:
    return x


@env.task
def sync_catches_a_bad_child_call() -> dict[str, Any]:
    try:
        echo_sync_int("not an int")  # type: ignore[arg-type]
    except TypeError as err:
        return {"type": type(err).__name__, "message": str(err)}
    return {"type": None}


@env.task
async def catches_a_bad_child_output() -> dict[str, Any]:
    try:
        await returns_a_str_for_an_int()
    except RuntimeUserError as err:
        return {"type": type(err).__name__, "code": err.code, "message": str(err)}
    return {"type": None}


@env.task(retries=flyte.RetryStrategy(2, backoff=flyte.Backoff(0.01)))
async def gives_up(log: str) -> int:
    append_line(log, "child")
    raise NonRecoverableError("cannot go on")


@env.task
async def catches_a_non_recoverable_child(log: str) -> dict[str, Any]:
    try:
        await gives_up(log)
    except RuntimeUserError as err:
        return {"is_user_error": True, "code": err.code, "message": str(err)}
    return {"is_user_error": False}


@env.task(retries=flyte.RetryStrategy(2, backoff=flyte.Backoff(0.01)))
async def does_not_catch_a_non_recoverable_child(log: str) -> int:
    append_line(log, "parent")
    return await gives_up(log)
