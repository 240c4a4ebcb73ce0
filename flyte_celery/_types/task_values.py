"""`TaskValues`: a task's inputs and outputs converted by its declared types, with errors naming the task and the
input or output.

Outputs: a task with several outputs (a tuple or NamedTuple annotation) returns one value per output, each
converted by its own type; the result is a tuple, or an instance of the declared NamedTuple. A task annotated
`-> None` must return None (Flyte raises "Expected no outputs"); a task without a return annotation is not
checked.

A parameter whose default is None accepts None whatever its annotation (`x: int = None`, the implicit Optional
of older typing); Flyte fails such a call when it reads the input back.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from flyte_celery._types.converter import Converter, identity
from flyte_celery._types.engine import converter_for, generation
from flyte_celery._types.mismatch import Mismatch


class TaskValues:
    """The converters of one interface's inputs and outputs, built once per registration `generation`."""

    def __init__(self, inputs: Mapping[str, tuple[Any, Any]], outputs: Mapping[str, Any], output_hint: Any) -> None:
        self.generation = generation()
        self._inputs: list[tuple[str, Converter, bool]] = []
        for name, (hint, default) in inputs.items():
            converter = converter_for(hint)
            if converter is not identity:
                self._inputs.append((name, converter, default is None))
        self._output_names = tuple(outputs) or ("o0",)
        self._output: Converter = identity
        self._outputs: list[tuple[str, Converter]] = []
        self._output_class: Any = None
        if output_hint is inspect.Signature.empty:
            pass  # no annotation: not checked
        elif len(outputs) <= 1:
            self._output = converter_for(output_hint)
        else:
            self._outputs = [(name, converter_for(hint)) for name, hint in outputs.items()]
            if isinstance(getattr(output_hint, "_fields", None), tuple):
                self._output_class = output_hint  # a NamedTuple: the result is one again

    def convert_inputs(self, values: dict[str, Any], task_name: str) -> dict[str, Any]:
        """`values` (input name -> value) with each value converted by its input's type: a copy if any value
        changed, else `values` itself.

        Raises:
            TypeError: Naming the task and the input, when a value does not fit its type.
        """
        converted = values
        for name, convert, none_default in self._inputs:
            value = values.get(name)
            if value is None and none_default:
                continue
            try:
                new = convert(value)
            except Mismatch as err:
                raise TypeError(
                    err.describe(f"task {task_name!r}: type conversion failed for input {name!r}")
                ) from None
            if new is not value:
                if converted is values:
                    converted = dict(values)
                converted[name] = new
        return converted

    def convert_outputs(self, value: Any, task_name: str) -> Any:
        """What the task returned, converted by its output types.

        Raises:
            TypeError: Naming the task and the output, when the value does not fit the task's output types.
        """
        if not self._outputs:
            return _converted(self._output, value, task_name, self._output_names[0])
        names = self._output_names
        if not isinstance(value, (tuple, list)) or len(value) != len(names):
            got = f"{len(value)} values" if isinstance(value, (tuple, list)) else type(value).__name__
            raise TypeError(f"task {task_name!r} returned {got}, expected {len(names)} outputs ({', '.join(names)})")
        parts = [
            _converted(convert, part, task_name, name)
            for (name, convert), part in zip(self._outputs, value, strict=True)
        ]
        return self._output_class(*parts) if self._output_class is not None else tuple(parts)


def _converted(convert: Converter, value: Any, task_name: str, output: str) -> Any:
    try:
        return convert(value)
    except Mismatch as err:
        raise TypeError(err.describe(f"task {task_name!r}: type conversion failed for output {output!r}")) from None
