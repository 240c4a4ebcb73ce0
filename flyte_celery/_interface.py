"""A task's typed interface: its inputs (names, hints, defaults) and its named outputs."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from flyte_celery._cache import interface_hash
from flyte_celery._types import TaskValues, generation

NO_DEFAULT: Any = inspect.Parameter.empty
_VALUES_KEY = "_task_values"  # where an interface keeps its converters, outside the dataclass fields


@dataclass(frozen=True)
class NativeInterface:
    """Inputs as `name -> (type hint, default or NO_DEFAULT)`, outputs as `name -> type hint`."""

    inputs: Mapping[str, tuple[Any, Any]]
    outputs: Mapping[str, Any]
    signature: inspect.Signature = field(compare=False, repr=False)
    output_hint: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def from_callable(cls, func: Callable[..., Any], task_name: str = "") -> NativeInterface:
        """Read the interface from `func`'s signature and type hints.

        Raises:
            TypeError: If the function takes `*args` or `**kwargs` (a task's inputs must be named).
        """
        signature = inspect.signature(func)
        hints = _type_hints(func)
        inputs: dict[str, tuple[Any, Any]] = {}
        for name, param in signature.parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                what = "*args" if param.kind is param.VAR_POSITIONAL else "**kwargs"
                raise TypeError(f"task {task_name or func.__qualname__!r} takes {what}: task inputs must be named")
            inputs[name] = (hints.get(name, Any), param.default)
        output_hint = hints.get("return", signature.return_annotation)
        return cls(inputs, _outputs_of(output_hint), signature, output_hint)

    @cached_property
    def input_hints(self) -> dict[str, Any]:
        return {name: hint for name, (hint, _) in self.inputs.items()}

    @cached_property
    def hash(self) -> str:
        return interface_hash(self.input_hints, self.output_hint)

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any], task_name: str) -> dict[str, Any]:
        """Map a call's arguments to input names, with defaults filled in.

        Raises:
            TypeError: Naming the task, when the arguments do not fit the signature.
        """
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"bad arguments for task {task_name!r}: {exc}") from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def convert_inputs(self, inputs: dict[str, Any], task_name: str) -> dict[str, Any]:
        """Bound inputs with each value converted by its declared type (see `flyte_celery._types`).

        Raises:
            TypeError: Naming the task and the input, when a value does not fit its type.
        """
        return self._values().convert_inputs(inputs, task_name)

    def convert_outputs(self, value: Any, task_name: str) -> Any:
        """A task body's result converted by the declared output types.

        Raises:
            TypeError: Naming the task and the output, when the result does not fit them.
        """
        return self._values().convert_outputs(value, task_name)

    def _values(self) -> TaskValues:
        values: TaskValues | None = self.__dict__.get(_VALUES_KEY)
        if values is None or values.generation != generation():
            values = self.__dict__[_VALUES_KEY] = TaskValues(self.inputs, self.outputs, self.output_hint)
        return values

    def __getstate__(self) -> dict[str, Any]:
        # Converters are closures built where they are used: a pickled task (a code bundle) is sent without them.
        state = dict(self.__dict__)
        state.pop(_VALUES_KEY, None)
        return state

    def output_tuple(self, value: Any) -> tuple[Any, ...]:
        """The outputs of one call as a tuple in output order: `(None,)` for none, `(v,)` for one."""
        if len(self.outputs) <= 1:
            return (value,)
        return tuple(value)


def _type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func)
    except Exception:
        # Unresolvable forward references: fall back to the raw annotations rather than refusing the task.
        return dict(getattr(func, "__annotations__", {}))


def _outputs_of(hint: Any) -> dict[str, Any]:
    if hint is None or hint is type(None) or hint is inspect.Signature.empty:
        return {}
    fields = getattr(hint, "_fields", None)
    if isinstance(hint, type) and issubclass(hint, tuple) and fields:
        field_hints = typing.get_type_hints(hint)
        return {name: field_hints.get(name, Any) for name in fields}
    if typing.get_origin(hint) is tuple:
        parts = typing.get_args(hint)
        if parts and parts[-1] is not Ellipsis and parts != ((),):
            return {f"o{i}": part for i, part in enumerate(parts)}
    return {"o0": hint}
