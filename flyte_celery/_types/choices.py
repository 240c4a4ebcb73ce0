"""Converters of types whose values come from a fixed set: `Enum` classes and `Literal[...]`.

- An `Enum` parameter takes a member of that class, or the *name* of one as a str (`"RED"` for `Color.RED`), which
  becomes the member. Flyte (2.12.1 and main) stores enums by name and refuses a str that is only a member's
  value (`"red"`), and so do we. Flyte refuses enums whose values are not strs (except `IntEnum`); we take any
  Enum, since our transport does not need a str.
- A `Literal[...]` parameter takes one of the listed values, of the same type (`True` does not match
  `Literal[1]`), and gives back the listed value itself. Flyte turns a Literal of strs into an enum of those strs
  and skips the check for other Literals (it pickles them as `Any`); we check every Literal.
"""

from __future__ import annotations

import enum
import typing
from typing import Any

from flyte_celery._types.converter import Converter
from flyte_celery._types.mismatch import Mismatch


def enum_converter(hint: type[enum.Enum]) -> Converter:
    members = hint.__members__  # names to members, aliases included

    def convert(value: Any) -> Any:
        if isinstance(value, hint):
            return value
        if isinstance(value, str) and not isinstance(value, enum.Enum):
            member = members.get(value)
            if member is not None:
                return member
            raise Mismatch(hint, value, f"not a member name; names are {', '.join(members)}")
        raise Mismatch(hint, value)

    return convert


def literal_converter(hint: Any) -> Converter:
    choices = typing.get_args(hint)

    def convert(value: Any) -> Any:
        for choice in choices:
            # Equality alone would let True match 1 and 1.0 match 1; the type must match too.
            if value == choice and isinstance(value, type(choice)) and (type(value) is bool) == (type(choice) is bool):
                return choice
        raise Mismatch(hint, value)

    return convert
