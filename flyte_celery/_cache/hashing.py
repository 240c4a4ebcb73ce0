"""Canonical typed encoding of task inputs and interfaces, for cache keys and child action ids.

Every value becomes deterministic bytes (never pickle bytes): the same value gives the same bytes in every process,
whatever the hash seed or dict order. Each encoding starts with a one-byte tag and is self-delimiting (lengths or a
`;` terminator), so concatenations cannot collide. Tags:

    N None  T/F bool  i int (hex)  f float (float.hex)  s str  b bytes  l list  u tuple  S set/frozenset (sorted)
    d dict (sorted by key)  D dataclass  P pydantic model  E Enum  H __flyte_hash__()  K File/Dir-like (hash or path)
    Y datetime  A date  M time  Z timedelta (microseconds)  C Decimal  U UUID  W path  O object __dict__
    Q object __slots__  X repr  R back-reference to an enclosing container (cycles)

The type hint only steers coercions Flyte applies when it converts inputs: an int passed where a float is declared
encodes as that float, and container hints pass their element types down. Values are otherwise tagged by their
runtime type, so `1`, `1.0`, `True` and `"1"` all differ.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import sys
import types
import typing
import uuid
from collections.abc import Collection, Mapping
from pathlib import PurePath
from typing import Annotated, Any, Literal, Union, get_args, get_origin

_UNION_ORIGINS: tuple[object, ...] = (Union, types.UnionType)
_CONTAINERS: frozenset[type] = frozenset({list, tuple, dict, set, frozenset})
_float_hints: dict[object, bool] = {}
_dataclass_hints: dict[type, dict[str, Any]] = {}


def encode_value(value: Any, hint: Any = Any) -> bytes:
    """Return the canonical bytes of `value` declared with type `hint` (Any when unknown).

    Objects with a `__flyte_hash__()` method encode as its result. Objects with both `hash` and `path`
    attributes (File/Dir-like) encode as the hash when it is a non-empty str, else as the path. Objects with
    no known shape encode as their type name plus their `__dict__` (or `__slots__`), else their `repr`.
    """
    return _encode(value, hint, ())


def inputs_hash(inputs: Mapping[str, Any], hints: Mapping[str, Any], ignored: Collection[str] = ()) -> str:
    """Hex SHA-256 over `name:<encoding>;` for each input in sorted-name order, `ignored` names left out.

    Args:
        inputs: Input values by name (defaults already filled in, so omitted and explicit defaults agree).
        hints: Declared type per input name; a missing name hashes as Any.
        ignored: Input names excluded from the hash (`Cache.ignored_inputs`).
    """
    digest = hashlib.sha256()
    for name in sorted(inputs):
        if ignored and name in ignored:
            continue
        digest.update(b"%s:%s;" % (name.encode("utf-8"), _encode(inputs[name], hints.get(name, Any), ())))
    return digest.hexdigest()


def interface_hash(input_hints: Mapping[str, Any], output_hint: Any) -> str:
    """Hex SHA-256 of a task interface: sorted input names with their `type_repr`, then the output type.

    The result only depends on the interface, so callers should compute it once per task.
    """
    inputs = ";".join(f"{name}:{type_repr(input_hints[name])}" for name in sorted(input_hints))
    return hashlib.sha256(f"in({inputs})out({type_repr(output_hint)})".encode()).hexdigest()


def type_repr(hint: Any) -> str:
    """Render a type hint canonically: `List[int]` and `list[int]`, `Optional[int]` and `None | int` agree.

    `Annotated` metadata is dropped; strings and forward references render as their text.
    """
    if hint is None or hint is type(None):
        return "None"
    if hint is Any:
        return "Any"
    if hint is Ellipsis:
        return "..."
    if isinstance(hint, str):
        return hint
    if isinstance(hint, typing.ForwardRef):
        return hint.__forward_arg__
    if isinstance(hint, typing.TypeVar):
        return f"~{hint.__name__}"
    if isinstance(hint, (list, tuple)):  # Callable's parameter list
        return "[" + ", ".join(type_repr(h) for h in hint) + "]"
    origin = get_origin(hint)
    if origin is Annotated:
        return type_repr(get_args(hint)[0])
    if origin in _UNION_ORIGINS:
        return "Union[" + ", ".join(sorted({type_repr(h) for h in get_args(hint)})) + "]"
    if origin is Literal:
        return "Literal[" + ", ".join(repr(a) for a in get_args(hint)) + "]"
    if origin is not None:
        return f"{type_repr(origin)}[{', '.join(type_repr(a) for a in get_args(hint))}]"
    if isinstance(hint, type):
        return hint.__qualname__ if hint.__module__ == "builtins" else _type_name(hint)
    return repr(hint)


def _encode(value: Any, hint: Any, stack: tuple[int, ...]) -> bytes:
    kind = type(value)
    # Fast paths: this runs for every child call.
    if kind is int:
        if hint is int or hint is Any or not _wants_float(hint):
            return b"i%x;" % value
        try:
            return b"f%s;" % float(value).hex().encode()
        except OverflowError:
            return b"i%x;" % value
    if kind is str:
        raw = value.encode("utf-8", "surrogatepass")
        return b"s%d:%s" % (len(raw), raw)
    if kind is float:
        return b"f%s;" % value.hex().encode()
    if kind is bool:
        return b"T" if value else b"F"
    if value is None:
        return b"N"
    if kind is bytes:
        return b"b%d:%s" % (len(value), value)
    if kind in _CONTAINERS:
        if id(value) in stack:
            return _back_reference(value, stack)
        return _encode_container(value, _narrow(hint, value), (*stack, id(value)))
    return _encode_other(value, hint, stack)


def _encode_other(value: Any, hint: Any, stack: tuple[int, ...]) -> bytes:
    flyte_hash = getattr(value, "__flyte_hash__", None)
    if callable(flyte_hash) and not isinstance(value, type):
        token = flyte_hash()
        raw = token if isinstance(token, bytes) else str(token).encode("utf-8")
        return b"H%s%s" % (_name_bytes(type(value)), _sized(raw))
    if hasattr(value, "hash") and hasattr(value, "path") and not isinstance(value, type):
        return _encode_file_like(value)
    if isinstance(value, enum.Enum):
        return b"E%s%s" % (_name_bytes(type(value)), _encode(value.value, Any, stack))
    if isinstance(value, bool):
        return b"T" if value else b"F"
    if isinstance(value, int):
        return _encode(int(value), hint, stack)
    if isinstance(value, float):
        return _encode(float(value), hint, stack)
    if isinstance(value, str):
        return _encode(str(value), hint, stack)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _encode(bytes(value), hint, stack)
    if id(value) in stack:
        return _back_reference(value, stack)
    inner = (*stack, id(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encode_dataclass(value, inner)
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(value, pydantic.BaseModel):
        return b"P%s%s" % (_name_bytes(type(value)), _encode(value.model_dump(mode="json"), Any, inner))
    scalar = _encode_scalar(value)
    if scalar is not None:
        return scalar
    return _encode_container(value, _narrow(hint, value), inner)


def _back_reference(value: Any, stack: tuple[int, ...]) -> bytes:
    return b"R%d;" % (len(stack) - stack.index(id(value)))


def _encode_file_like(value: Any) -> bytes:
    token = value.hash
    if isinstance(token, str) and token:
        return b"K%sh%s" % (_name_bytes(type(value)), _sized(token.encode("utf-8")))
    path = value.path
    text = str(path) if path is not None else ""
    return b"K%sp%s" % (_name_bytes(type(value)), _sized(text.encode("utf-8", "surrogatepass")))


def _encode_dataclass(value: Any, stack: tuple[int, ...]) -> bytes:
    hints = _hints_of_dataclass(type(value))
    fields = dataclasses.fields(value)
    parts = [b"D%s%d:" % (_name_bytes(type(value)), len(fields))]
    for f in fields:
        parts.append(_encode(f.name, Any, stack))
        parts.append(_encode(getattr(value, f.name), hints.get(f.name, Any), stack))
    return b"".join(parts)


def _encode_scalar(value: Any) -> bytes | None:
    if isinstance(value, dt.datetime):
        return b"Y%s" % _sized(value.isoformat().encode())
    if isinstance(value, dt.date):
        return b"A%s" % _sized(value.isoformat().encode())
    if isinstance(value, dt.time):
        return b"M%s" % _sized(value.isoformat().encode())
    if isinstance(value, dt.timedelta):
        micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
        return b"Z%x;" % micros
    if isinstance(value, decimal.Decimal):
        return b"C%s" % _sized(str(value).encode())
    if isinstance(value, uuid.UUID):
        return b"U%s;" % value.hex.encode()
    if isinstance(value, PurePath):
        return b"W%s" % _sized(value.as_posix().encode("utf-8", "surrogatepass"))
    return None


def _encode_container(value: Any, hint: Any, stack: tuple[int, ...]) -> bytes:
    args = get_args(hint)
    if isinstance(value, (list, tuple)):
        tag = b"l" if isinstance(value, list) else b"u"
        if isinstance(value, tuple) and args and not (len(args) == 2 and args[1] is Ellipsis):
            hints = [args[i] if i < len(args) else Any for i in range(len(value))]
        else:
            hints = [args[0] if args else Any] * len(value)
        items = [_encode(item, h, stack) for item, h in zip(value, hints, strict=True)]
        return b"%s%d:%s" % (tag, len(items), b"".join(items))
    if isinstance(value, (set, frozenset)):
        elem = args[0] if args else Any
        items = sorted(_encode(item, elem, stack) for item in value)
        return b"S%d:%s" % (len(items), b"".join(items))
    if isinstance(value, Mapping):
        key_hint, value_hint = args if len(args) == 2 else (Any, Any)
        pairs = sorted((_encode(k, key_hint, stack), _encode(v, value_hint, stack)) for k, v in value.items())
        return b"d%d:%s" % (len(pairs), b"".join(k + v for k, v in pairs))
    return _encode_object(value, stack)


def _encode_object(value: Any, stack: tuple[int, ...]) -> bytes:
    name = _name_bytes(type(value))
    attrs = getattr(value, "__dict__", None)
    if isinstance(attrs, dict):
        return b"O%s%s" % (name, _encode(attrs, Any, stack))
    slots = _slot_items(value)
    if slots:
        return b"Q%s%s" % (name, _encode(slots, Any, stack))
    return b"X%s%s" % (name, _sized(repr(value).encode("utf-8", "surrogatepass")))


def _slot_items(value: Any) -> dict[str, Any]:
    items: dict[str, Any] = {}
    missing = object()
    for cls in type(value).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot in ("__dict__", "__weakref__") or slot in items:
                continue
            attr = getattr(value, slot, missing)
            if attr is not missing:
                items[slot] = attr
    return items


def _narrow(hint: Any, value: Any) -> Any:
    """The member of a Union hint that `value` belongs to (Any when none does), else the hint itself."""
    if hint is Any:
        return hint
    origin = get_origin(hint)
    if origin is Annotated:
        return _narrow(get_args(hint)[0], value)
    if origin not in _UNION_ORIGINS:
        return hint
    for member in get_args(hint):
        cls = get_origin(member) or member
        if isinstance(cls, type) and isinstance(value, cls):
            return member
    return Any


def _wants_float(hint: Any) -> bool:
    """True when an int declared as `hint` must encode as a float (float, Optional[float], Annotated[float, ...])."""
    try:
        return _float_hints[hint]
    except KeyError:
        pass
    except TypeError:  # unhashable hint
        return _compute_wants_float(hint)
    result = _float_hints[hint] = _compute_wants_float(hint)
    return result


def _compute_wants_float(hint: Any) -> bool:
    if hint is float:
        return True
    origin = get_origin(hint)
    if origin is Annotated:
        return _compute_wants_float(get_args(hint)[0])
    if origin in _UNION_ORIGINS:
        members = get_args(hint)
        return float in members and int not in members
    return False


def _hints_of_dataclass(cls: type) -> dict[str, Any]:
    hints = _dataclass_hints.get(cls)
    if hints is None:
        try:
            hints = typing.get_type_hints(cls)
        except Exception:  # unresolvable forward references: fall back to runtime types
            hints = {}
        _dataclass_hints[cls] = hints
    return hints


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _name_bytes(cls: type) -> bytes:
    return _sized(_type_name(cls).encode("utf-8"))


def _sized(raw: bytes) -> bytes:
    return b"%d:%s" % (len(raw), raw)
