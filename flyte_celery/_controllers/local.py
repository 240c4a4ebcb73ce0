"""The local controller: every action of the run executes in this process, on the run's event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

from flyte_celery._action_call import prepare_child_call
from flyte_celery._cache import CacheStore
from flyte_celery._context import Frame, Mode
from flyte_celery._controllers.base import TaskCallSequencer
from flyte_celery._execution import execute_action
from flyte_celery._run_spec import RunSpec
from flyte_celery._task import TaskTemplate
from flyte_celery.errors import BaseRuntimeError, RuntimeUserError


class LocalController:
    """Runs child actions as coroutines on `loop` (sync bodies on their own threads), with the shared cache flow.

    `max_action_concurrency` of the run bounds how many children of one parent run at once, so it never blocks a
    parent's own children behind it.
    """

    def __init__(
        self, run: RunSpec, store: CacheStore | None, loop: asyncio.AbstractEventLoop, mode: Mode = "local"
    ) -> None:
        self.run = run
        self.store = store
        self.loop = loop
        self.mode = mode
        self.sequencer = TaskCallSequencer()
        self._limits: dict[str, asyncio.Semaphore] = {}

    async def submit(
        self, frame: Frame, task: TaskTemplate[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        try:
            call = prepare_child_call(frame, task, args, kwargs, self.sequencer, self.mode)
        except (BaseRuntimeError, TypeError):
            raise  # a TypeError is a bad call (arguments that do not fit the task): raised where the call is made
        except Exception as exc:
            raise RuntimeUserError(type(exc).__name__, str(exc)) from exc
        limit = self._limit_for(frame)
        if limit is None:
            return await execute_action(call, self.run, self, self.store)
        async with limit:
            return await execute_action(call, self.run, self, self.store)

    def submit_sync(
        self, frame: Frame, task: TaskTemplate[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(self.submit(frame, task, args, kwargs), self.loop)

    def finalize_parent_action(self, action_key: str) -> None:
        self.sequencer.forget(action_key)
        self._limits.pop(action_key, None)

    async def stop(self) -> None:
        if self.store is not None:
            await self.store.close()

    def _limit_for(self, frame: Frame) -> asyncio.Semaphore | None:
        bound = self.run.max_action_concurrency
        if not bound:
            return None
        parent = (frame.task.task_action or frame.task.action).key
        limit = self._limits.get(parent)
        if limit is None:
            limit = self._limits[parent] = asyncio.Semaphore(bound)
        return limit
