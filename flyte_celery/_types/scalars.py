"""Converters of Flyte's simple types: int, float, str, bool, bytes, None, datetime, date and timedelta.

What each accepts follows Flyte's type engine (`flyte/types/_type_engine.py`, checked against flyte 2.12.1):

- `int` takes ints, not bools (Flyte's protobuf literal refuses them) nor floats; an int subclass (an `IntEnum`
  member) becomes a plain int, as after Flyte's round trip.
- `float` takes floats and ints, not bools; an int becomes a float. Flyte 2.12.1 refuses ints, its main branch
  coerces them ("int -> float tool args", flyte-sdk 81e8f76); we follow the coercion, the direction Flyte took.
- `bool` takes only bools; `str` takes strs (a `str` subclass, e.g. a `StrEnum` member, becomes a plain str).
- `bytes` is not one of Flyte's simple types (Flyte pickles it and checks nothing); we take bytes only.
- `datetime`: a naive datetime is taken as UTC and an aware one is converted to UTC; the result is always aware,
  with `tzinfo=timezone.utc` (Flyte stores a protobuf Timestamp and reads it back as UTC). A `date` is refused.
  Inside a record (dataclass, pydantic model, NamedTuple, TypedDict, tuple) a datetime keeps its timezone or
  its lack of one, as Flyte's msgpack/JSON encoding of records does (`to_datetime_as_is`).
- `date` takes dates; a datetime becomes its own calendar date (`datetime.date()`), as Flyte's `combine` does.
- `timedelta` takes timedeltas (a subclass, e.g. pandas' `Timedelta`, becomes a plain one); numbers are refused.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flyte_celery._types.converter import Converter
from flyte_celery._types.mismatch import Mismatch

UTC = dt.timezone.utc


def to_int(value: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise Mismatch(int, value)


def to_float(value: Any) -> float:
    kind = type(value)
    if kind is float:
        return value  # type: ignore[no-any-return]
    if kind is int or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return float(value)
    raise Mismatch(float, value)


def to_str(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, str):
        return str.__str__(value)  # the characters, not the subclass's __str__ (an Enum's would give its name)
    raise Mismatch(str, value)


def to_bool(value: Any) -> bool:
    if type(value) is bool:
        return value
    raise Mismatch(bool, value)


def to_bytes(value: Any) -> bytes:
    if type(value) is bytes:
        return value
    if isinstance(value, bytes):
        return bytes(value)
    raise Mismatch(bytes, value)


def to_none(value: Any) -> None:
    if value is not None:
        raise Mismatch(None, value)


def to_datetime(value: Any) -> dt.datetime:
    plain = to_datetime_as_is(value)
    tz = plain.tzinfo
    if tz is UTC:
        return plain
    if tz is None or tz.utcoffset(plain) is None:
        return plain.replace(tzinfo=UTC)
    return plain.astimezone(UTC)


def to_datetime_as_is(value: Any) -> dt.datetime:
    """A datetime inside a record (dataclass, model, tuple): checked, its timezone (or its lack of one) kept, as
    Flyte's msgpack/JSON encoding of records keeps it."""
    if type(value) is dt.datetime:
        return value
    if isinstance(value, dt.datetime):  # pandas' Timestamp and other subclasses: a plain datetime, as Flyte returns
        return dt.datetime(
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
            value.tzinfo,
            fold=value.fold,
        )
    raise Mismatch(dt.datetime, value)


def to_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if type(value) is dt.date:
        return value
    if isinstance(value, dt.date):
        return dt.date(value.year, value.month, value.day)
    raise Mismatch(dt.date, value)


def to_timedelta(value: Any) -> dt.timedelta:
    if type(value) is dt.timedelta:
        return value
    if isinstance(value, dt.timedelta):
        return dt.timedelta(days=value.days, seconds=value.seconds, microseconds=value.microseconds)
    raise Mismatch(dt.timedelta, value)


SCALARS: dict[Any, Converter] = {
    int: to_int,
    float: to_float,
    str: to_str,
    bool: to_bool,
    bytes: to_bytes,
    type(None): to_none,
    dt.datetime: to_datetime,
    dt.date: to_date,
    dt.timedelta: to_timedelta,
}
