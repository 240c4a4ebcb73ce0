"""What every controller does the same way: numbering calls, bounding children per parent, the sync bridge."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from typing import Any

from flyte_celery._action_call import ActionCall, prepare_child_call
from flyte_celery._context import Frame, Mode
from flyte_celery._controllers.base import TaskCallSequencer
from flyte_celery._task import TaskTemplate
from flyte_celery.errors import BaseRuntimeError, RuntimeUserError


class ChildCalls:
    """A base for controllers; subclasses implement `submit`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, mode: Mode) -> None:
        self.loop = loop
        self.mode = mode
        self.sequencer = TaskCallSequencer()
        self._limits: dict[str, asyncio.Semaphore] = {}

    async def submit(
        self, frame: Frame, task: TaskTemplate[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        raise NotImplementedError

    def submit_sync(
        self, frame: Frame, task: TaskTemplate[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(self.submit(frame, task, args, kwargs), self.loop)

    async def recorded_trace(self, frame: Frame) -> tuple[Any] | None:
        return None  # only a controller whose parents can be replayed records traces

    async def record_trace(self, frame: Frame, output: Any) -> None:
        return None

    def finalize_parent_action(self, action_key: str) -> None:
        self.sequencer.forget(action_key)
        self._limits.pop(action_key, None)

    def prepare(
        self, frame: Frame, task: TaskTemplate[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> ActionCall:
        """The child's `ActionCall`; a failure to prepare it is the caller's error, raised at the call site."""
        try:
            return prepare_child_call(frame, task, args, kwargs, self.sequencer, self.mode)
        except (BaseRuntimeError, TypeError):
            raise  # a TypeError is a bad call (arguments that do not fit the task)
        except Exception as exc:
            raise RuntimeUserError(type(exc).__name__, str(exc)) from exc

    def limit_for(self, frame: Frame) -> contextlib.AbstractAsyncContextManager[Any]:
        """The run's `max_action_concurrency`, per parent: how many of its children run at once."""
        bound = frame.run.max_action_concurrency
        if not bound:
            return contextlib.nullcontext()
        parent = (frame.task.task_action or frame.task.action).key
        limit = self._limits.get(parent)
        if limit is None:
            limit = self._limits[parent] = asyncio.Semaphore(bound)
        return limit
