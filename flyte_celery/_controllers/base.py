"""The `Controller` protocol every mode implements, and the call sequencer they share."""

from __future__ import annotations

import concurrent.futures
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from flyte_celery._context import Frame
    from flyte_celery._task import TaskTemplate


class Controller(Protocol):
    """Runs child actions for the task running in `frame`.

    `submit` returns the child's native result or raises a `flyte_celery.errors` error; `submit_sync` does the same
    for synchronous callers (a sync task body on its own thread) through a future. `sequencer` numbers repeated
    identical calls of one parent (traces use it too).
    """

    sequencer: TaskCallSequencer

    async def submit(
        self, frame: Frame, task: TaskTemplate[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any: ...

    def submit_sync(
        self, frame: Frame, task: TaskTemplate[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> concurrent.futures.Future[Any]: ...

    def finalize_parent_action(self, action_key: str) -> None:
        """Forget per-parent state once the attempt of the action with this `ActionID.key` has ended."""
        ...

    async def recorded_trace(self, frame: Frame) -> tuple[Any] | None:
        """`(output,)` recorded for the trace whose pseudo-action `frame` runs, when its parent is being replayed."""
        ...

    async def record_trace(self, frame: Frame, output: Any) -> None:
        """Record a trace's output, so a replay of its parent returns it instead of running the trace again."""
        ...

    async def stop(self) -> None: ...


class TaskCallSequencer:
    """Numbers identical calls (same task, inputs and group) made by one parent: 0, 1, 2, ...

    The number is part of the child's action name, so a parent that calls `t(1)` twice gets two distinct children,
    and a replayed parent gets the same names again.
    """

    def __init__(self) -> None:
        self._counters: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))

    def next_seq(self, parent: str, call_key: str) -> int:
        counters = self._counters[parent]
        seq = counters[call_key]
        counters[call_key] = seq + 1
        return seq

    def forget(self, parent: str) -> None:
        self._counters.pop(parent, None)
