"""`group(name)`: a named block of calls; the name is folded into the names of the actions started in it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flyte_celery._context import GroupData, task_context_replaced


@contextmanager
def group(name: str) -> Iterator[None]:
    """Within the block, task calls belong to group `name` (shown with them, part of their action names).

    Outside a task it does nothing.

    Raises:
        ValueError: If `name` is empty.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"group name must be a non-empty string, got {name!r}")
    with task_context_replaced(group_data=GroupData(name)):
        yield
