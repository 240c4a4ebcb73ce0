"""The converter of each type hint: which kind of type a hint is, and the cached converter built for it.

Order of the look-up, as in Flyte's `TypeEngine.get_transformer`: `Any` and missing annotations (no check),
`Annotated` (its first argument), registered transformers, then the generic forms (`Union`, `Literal`, `list`,
`dict`, `tuple`), then classes (simple types, Enum, NamedTuple, TypedDict, dataclass, pydantic model), and
finally the pickle fallback. `object` is treated as `Any`.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import inspect
import threading
import types
import typing
from typing import Any

import pydantic
import typing_extensions

from flyte_celery._types.choices import enum_converter, literal_converter
from flyte_celery._types.containers import (
    dict_converter,
    list_converter,
    tuple_converter,
    union_converter,
    variadic_tuple_converter,
)
from flyte_celery._types.converter import Converter, identity, instance_of
from flyte_celery._types.fallback import pickled
from flyte_celery._types.mismatch import Mismatch
from flyte_celery._types.registry import Registry, Transformer, TypeKey, is_pandas_frame
from flyte_celery._types.scalars import SCALARS, to_datetime_as_is
from flyte_celery._types.structs import (
    dataclass_converter,
    model_converter,
    named_tuple_converter,
    typed_dict_converter,
)

_UNCHECKED = (Any, object, inspect.Parameter.empty)

# Keyed by (hint, its spelling, inside a record). The spelling, because unions compare equal in any order
# (`Union[int, str] == Union[str, int]`) while their members are tried in order; a record's flag, because a
# datetime inside a record keeps its timezone and elsewhere becomes UTC.
_cache: dict[tuple[Any, str, bool], Converter] = {}
_registry = Registry()
_registry.add(is_pandas_frame, instance_of)
_lock = threading.Lock()
_generation = 0


def register(key: TypeKey, transformer: Transformer) -> None:
    """Convert values declared as `key` with the converter `transformer(hint)` returns.

    Args:
        key: A class (its subclasses match too, the nearest registered class first), or a predicate on hints.
        transformer: Given the declared hint, returns a converter: a function from a value to the converted value
            that raises `TypeError` or `ValueError` saying why a value is refused. `instance_of` accepts the
            instances of the hint as they are.

    Register before the first run that uses the type: converters already built for it are dropped, but a
    converter built meanwhile in another thread may keep the old one.
    """
    global _generation
    with _lock:
        _registry.add(key, transformer)
        _cache.clear()
        _generation += 1


def generation() -> int:
    """A number that changes with every registration, so holders of converters know when to rebuild them."""
    return _generation


def converter_for(hint: Any, in_record: bool = False) -> Converter:
    """The converter of values declared as `hint` (built once per hint, then cached)."""
    key = (hint, repr(hint) if typing.get_args(hint) else "", in_record)
    try:
        return _cache[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable hint (Annotated with unhashable metadata): built each time
        return _build(hint, in_record)
    converter = _build(hint, in_record)
    _cache[key] = converter  # records resolve their fields on first use, so a record may contain itself
    return converter


def _build(hint: Any, in_record: bool) -> Converter:
    if any(hint is unchecked for unchecked in _UNCHECKED) or isinstance(hint, (str, typing.TypeVar, typing.ForwardRef)):
        return identity
    if hint is None or hint is type(None):
        return SCALARS[type(None)]
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing_extensions.Annotated:
        return converter_for(args[0], in_record)
    supertype = getattr(hint, "__supertype__", None)  # typing.NewType
    if supertype is not None:
        return converter_for(supertype, in_record)
    transformer = _registry.find(hint)
    if transformer is not None:
        return _guarded(hint, transformer(hint))
    if origin is not None:
        return _generic(hint, origin, args, in_record)
    if not isinstance(hint, type):
        return identity  # not a type at all (a hint spelt as an instance): nothing to check against
    return _class(hint, in_record)


def _generic(hint: Any, origin: Any, args: tuple[Any, ...], in_record: bool) -> Converter:
    if origin is typing.Union or origin is types.UnionType:
        return union_converter(hint, [(arg, converter_for(arg, in_record)) for arg in args])
    if origin is typing.Literal:
        return literal_converter(hint)
    if origin is list:
        return list_converter(hint, converter_for(args[0] if args else Any, in_record))
    if origin is dict:
        key, value = args if len(args) == 2 else (Any, Any)
        return dict_converter(hint, converter_for(key, in_record), converter_for(value, in_record))
    if origin is tuple:
        # Flyte moves tuples through pydantic, like records: their datetimes keep their timezone.
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            return variadic_tuple_converter(hint, converter_for(args[0] if args else Any, True))
        parts = () if args == ((),) else args
        return tuple_converter(hint, [converter_for(part, True) for part in parts])
    return pickled(hint, origin)  # set[int], Sequence[str], Callable[..., int], a user's generic class...


def _class(hint: type, in_record: bool) -> Converter:
    scalar = SCALARS.get(hint)
    if scalar is not None:
        return to_datetime_as_is if in_record and hint is datetime.datetime else scalar
    if hint is list:
        return list_converter(hint, identity)
    if hint is dict:
        return dict_converter(hint, identity, identity)
    if hint is tuple:
        return variadic_tuple_converter(hint, identity)
    if issubclass(hint, enum.Enum):
        return enum_converter(hint)
    if issubclass(hint, tuple) and isinstance(getattr(hint, "_fields", None), tuple):
        return named_tuple_converter(hint, _in_record)
    if typing_extensions.is_typeddict(hint):
        return typed_dict_converter(hint, _in_record)
    if dataclasses.is_dataclass(hint):
        return dataclass_converter(hint, _in_record)
    if issubclass(hint, pydantic.BaseModel):
        return model_converter(hint)
    return pickled(hint, hint)


def _in_record(hint: Any) -> Converter:
    return converter_for(hint, True)


def _guarded(hint: Any, convert: Converter) -> Converter:
    """A registered converter whose TypeErrors and ValueErrors become `Mismatch`es naming the hint."""

    def guarded(value: Any) -> Any:
        try:
            return convert(value)
        except Mismatch:
            raise
        except (TypeError, ValueError) as exc:
            raise Mismatch(hint, value, str(exc)) from None

    return guarded
