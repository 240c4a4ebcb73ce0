"""What a converter is: a function from a value to the value converted to one declared type.

A converter returns the value converted (the same object when nothing needs to change) or raises `Mismatch`.
One is built per type hint and cached, so checking a value costs a call, not a look at the hint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flyte_celery._types.mismatch import Mismatch

Converter = Callable[[Any], Any]


def identity(value: Any) -> Any:
    """The converter of `Any`, of a missing annotation and of hints that cannot be checked."""
    return value


def instance_of(hint: type) -> Converter:
    """A converter that accepts instances of `hint` (subclasses included) as they are, and nothing else.

    For a parametrized pydantic generic (`File[pd.DataFrame]`) that is an instance of the generic class (`File`):
    pydantic makes `File[X]` a subclass of `File`, of which a plain `File` is not an instance.
    """
    cls = generic_origin(hint)

    def convert(value: Any) -> Any:
        if isinstance(value, cls):
            return value
        raise Mismatch(hint, value)

    return convert


def generic_origin(hint: type) -> type:
    """The generic class a parametrized pydantic model was made from (`File` for `File[str]`), else `hint`."""
    metadata = getattr(hint, "__pydantic_generic_metadata__", None)
    origin = metadata.get("origin") if isinstance(metadata, dict) else None
    return origin if isinstance(origin, type) else hint
