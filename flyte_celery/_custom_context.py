"""`custom_context(**kv)` and `get_custom_context()`: string metadata that follows calls down the task tree."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

from flyte_celery._context import current_frame, task_context_replaced

# Outside any task, a `custom_context()` block adds to the base context of runs started inside it.
_EMPTY: Mapping[str, str] = MappingProxyType({})
_driver_context: ContextVar[Mapping[str, str]] = ContextVar("flyte_celery_driver_custom_context", default=_EMPTY)


def _checked(values: Mapping[str, object]) -> dict[str, str]:
    for key, value in values.items():
        if not isinstance(value, str):
            raise TypeError(f"custom_context values must be strings: {key}={value!r} is a {type(value).__name__}")
    return dict(values)  # type: ignore[arg-type]


@contextmanager
def custom_context(**values: str) -> Iterator[None]:
    """Within the block, `values` are merged into the custom context (later keys win).

    Inside a task they reach every task called in the block, and their children, however the calls are made
    (awaited, gathered, mapped). Outside a task they are added to the base context of runs started in the block.

    Raises:
        TypeError: If a value is not a string.
    """
    checked = _checked(values)
    frame = current_frame()
    if frame is None:
        token = _driver_context.set({**_driver_context.get(), **checked})
        try:
            yield
        finally:
            _driver_context.reset(token)
        return
    with task_context_replaced(custom_context={**frame.task.custom_context, **checked}):
        yield


def get_custom_context() -> dict[str, str]:
    """The current custom context: the running task's, else what enclosing `custom_context()` blocks set."""
    frame = current_frame()
    if frame is None:
        return dict(_driver_context.get())
    return dict(frame.task.custom_context)


def driver_custom_context() -> Mapping[str, str]:
    return _driver_context.get()
