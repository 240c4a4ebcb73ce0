"""Converters of containers: `list[X]`, `dict[K, V]`, `tuple[...]` and `Union`/`Optional`, built from the
converters of their parts.

Choices, where Flyte's own checks differ from what its transport needs:

- `list[X]` takes lists (subclasses too; Flyte refuses them), not tuples or other iterables (as Flyte).
- `dict[K, V]` takes dicts and converts keys by `K`: a non-str key of a `dict[str, V]` is a `TypeError` here
  (Flyte raises `ValueError`). `dict` with other key types is checked the same way (Flyte stores it as msgpack).
- `tuple[X, Y]` takes a tuple or a list of that length and gives a tuple (as Flyte, through pydantic);
  `tuple[X, ...]` takes any length.
- `Union`/`Optional`: a member whose class is exactly the value's type is used first, else the members are tried
  in order and the first that accepts the value wins (Flyte raises when several non-exact members accept it; we
  take the first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flyte_celery._types.converter import Converter, identity
from flyte_celery._types.mismatch import Mismatch


def list_converter(hint: Any, item: Converter) -> Converter:
    if item is identity:

        def any_items(value: Any) -> Any:
            if isinstance(value, list):
                return value
            raise Mismatch(hint, value)

        return any_items

    def convert(value: Any) -> Any:
        if not isinstance(value, list):
            raise Mismatch(hint, value)
        out = []
        for index, element in enumerate(value):
            try:
                out.append(item(element))
            except Mismatch as err:
                raise err.within(f"[{index}]") from None
        return out

    return convert


def dict_converter(hint: Any, key: Converter, item: Converter) -> Converter:
    if key is identity and item is identity:

        def any_entries(value: Any) -> Any:
            if isinstance(value, dict):
                return value
            raise Mismatch(hint, value)

        return any_entries

    def convert(value: Any) -> Any:
        if not isinstance(value, dict):
            raise Mismatch(hint, value)
        out = {}
        for name, element in value.items():
            try:
                converted_name = key(name)
            except Mismatch as err:
                raise err.within(f" key {name!r}") from None
            try:
                out[converted_name] = item(element)
            except Mismatch as err:
                raise err.within(f"[{name!r}]") from None
        return out

    return convert


def tuple_converter(hint: Any, items: Sequence[Converter]) -> Converter:
    """`tuple[X, Y, ...]` with one converter per position."""

    def convert(value: Any) -> Any:
        if not isinstance(value, (tuple, list)) or len(value) != len(items):
            raise Mismatch(hint, value, f"needs {len(items)} elements" if isinstance(value, (tuple, list)) else "")
        return tuple(_converted_elements(items, value))

    return convert


def variadic_tuple_converter(hint: Any, item: Converter) -> Converter:
    """`tuple[X, ...]`: any length, every element an `X`."""

    def convert(value: Any) -> Any:
        if not isinstance(value, (tuple, list)):
            raise Mismatch(hint, value)
        if item is identity:
            return tuple(value)
        return tuple(_converted_elements([item] * len(value), value))

    return convert


def _converted_elements(items: Sequence[Converter], value: Sequence[Any]) -> list[Any]:
    out = []
    for index, (item, element) in enumerate(zip(items, value, strict=True)):
        try:
            out.append(item(element))
        except Mismatch as err:
            raise err.within(f"[{index}]") from None
    return out


def union_converter(hint: Any, members: Sequence[tuple[Any, Converter]]) -> Converter:
    if any(converter is identity for _, converter in members):
        return identity  # `Union[X, Any]` accepts anything as it is, as Flyte's check does
    exact = {member: converter for member, converter in members if isinstance(member, type)}
    ordered = [converter for _, converter in members]

    def convert(value: Any) -> Any:
        converter = exact.get(type(value))
        if converter is not None:
            return converter(value)
        for converter in ordered:
            try:
                return converter(value)
            except Mismatch:
                continue
        raise Mismatch(hint, value)

    return convert
