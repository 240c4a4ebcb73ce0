"""Converters of record types: dataclasses, pydantic models, NamedTuples and TypedDicts.

Their fields are converted by their declared types, resolved at first use (a record may contain itself). Flyte
moves these as msgpack or JSON, so a datetime inside one keeps its timezone, or its lack of one; the engine builds
their fields' converters in that mode (see `engine`).

- A dataclass parameter takes an instance of the class (its fields converted; a changed field gives a shallow copy,
  the caller's object is never modified) or a dict of its fields, which is validated into an instance: unknown
  keys and missing required fields are refused, `Optional` fields may be left out (as Flyte).
- A pydantic model takes an instance as it is (pydantic validated it when it was made) or a dict, validated with
  `model_validate(strict=False)` (as Flyte). A parametrized generic model (`File[str]`) takes any instance of
  its generic class. An instance of another model is refused (Flyte would dump and re-validate it).
- A NamedTuple takes an instance, a tuple or a list of its length, and gives an instance.
- A TypedDict takes a dict; keys it does not declare are dropped (as pydantic, Flyte's transport, does).
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Callable
from typing import Any

import pydantic

from flyte_celery._types.converter import Converter, generic_origin
from flyte_celery._types.mismatch import Mismatch

Resolve = Callable[[Any], Converter]
_UNSET: Any = object()


class _Fields:
    """The `(name, converter)` of each field of a class, resolved once, on first use."""

    def __init__(self, cls: type, names: list[str], resolve: Resolve) -> None:
        self._cls = cls
        self._names = names
        self._resolve = resolve
        self._fields: list[tuple[str, Converter]] | None = None

    def __call__(self) -> list[tuple[str, Converter]]:
        if self._fields is None:
            hints = field_hints(self._cls)
            self._fields = [(name, self._resolve(hints.get(name, Any))) for name in self._names]
        return self._fields


def field_hints(cls: type) -> dict[str, Any]:
    """The declared type of each field; a hint that does not resolve (a forward reference) is `Any`."""
    try:
        return typing.get_type_hints(cls)
    except Exception:
        raw = getattr(cls, "__annotations__", {})
        return {name: Any if isinstance(hint, str) else hint for name, hint in raw.items()}


def dataclass_converter(cls: type, resolve: Resolve) -> Converter:
    fields = _Fields(cls, [f.name for f in dataclasses.fields(cls)], resolve)
    init_names = {f.name for f in dataclasses.fields(cls) if f.init}
    required = {
        f.name
        for f in dataclasses.fields(cls)
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    may_be_left_out: list[set[str]] = []  # required fields that take None, found on first use

    def from_instance(value: Any) -> Any:
        changed = {}
        for name, convert in fields():
            current = getattr(value, name, _UNSET)
            if current is _UNSET:
                continue  # an init=False field not set yet
            converted = _field(convert, current, name)
            if converted is not current:
                changed[name] = converted
        if not changed:
            return value
        result = copy.copy(value)
        for name, converted in changed.items():
            object.__setattr__(result, name, converted)  # frozen dataclasses too; __init__ is not run again
        return result

    def from_dict(value: dict[Any, Any]) -> Any:
        by_name = dict(fields())
        unknown = [key for key in value if key not in init_names]
        if unknown:
            raise Mismatch(cls, value, f"unknown field(s) {', '.join(map(repr, unknown))}")
        if not may_be_left_out:
            may_be_left_out.append({name for name in required if _accepts_none(by_name[name])})
        missing = sorted(required - may_be_left_out[0] - set(value))
        if missing:
            raise Mismatch(cls, value, f"missing field(s) {', '.join(map(repr, missing))}")
        kwargs = {name: _field(by_name[name], element, name) for name, element in value.items()}
        for name in may_be_left_out[0] - set(value):
            kwargs[name] = None
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:  # the class's own checks (__post_init__) refused the fields
            raise Mismatch(cls, value, str(exc)) from None

    def convert(value: Any) -> Any:
        if isinstance(value, cls):
            return from_instance(value)
        if isinstance(value, dict):
            return from_dict(value)
        raise Mismatch(cls, value)

    return convert


def _accepts_none(convert: Converter) -> bool:
    try:
        convert(None)
    except Mismatch:
        return False
    return True


def _field(convert: Converter, value: Any, name: str) -> Any:
    try:
        return convert(value)
    except Mismatch as err:
        raise err.within(f".{name}") from None


def model_converter(cls: type[pydantic.BaseModel]) -> Converter:
    instance_class = generic_origin(cls)  # a `File[str]` parameter takes any `File`

    def convert(value: Any) -> Any:
        if isinstance(value, instance_class):
            return value
        if isinstance(value, dict):
            try:
                return cls.model_validate(value, strict=False)
            except pydantic.ValidationError as exc:
                raise Mismatch(cls, value, _first_error(exc)) from None
        raise Mismatch(cls, value)

    return convert


def _first_error(exc: pydantic.ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def named_tuple_converter(cls: type[tuple[Any, ...]], resolve: Resolve) -> Converter:
    names: list[str] = list(getattr(cls, "_fields", ()))
    fields = _Fields(cls, names, resolve)

    def convert(value: Any) -> Any:
        if not isinstance(value, (tuple, list)) or len(value) != len(names):
            raise Mismatch(cls, value, f"needs {len(names)} fields" if isinstance(value, (tuple, list)) else "")
        converted = [
            _field(convert_one, element, name) for (name, convert_one), element in zip(fields(), value, strict=True)
        ]
        if type(value) is cls and all(new is old for new, old in zip(converted, value, strict=True)):
            return value
        return cls(*converted)

    return convert


def typed_dict_converter(cls: type, resolve: Resolve) -> Converter:
    required: frozenset[str] = getattr(cls, "__required_keys__", frozenset())
    fields = _Fields(cls, list(field_hints(cls)), resolve)

    def convert(value: Any) -> Any:
        if not isinstance(value, dict):
            raise Mismatch(cls, value)
        missing = sorted(required - set(value))
        if missing:
            raise Mismatch(cls, value, f"missing key(s) {', '.join(map(repr, missing))}")
        return {name: _field(convert_one, value[name], name) for name, convert_one in fields() if name in value}

    return convert
