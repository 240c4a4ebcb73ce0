"""The local controller: every action of the run executes in this process, on the run's event loop."""

from __future__ import annotations

import asyncio
from typing import Any

from flyte_celery._cache.sealed import SealedCache
from flyte_celery._context import Frame, Mode
from flyte_celery._controllers.shared import ChildCalls
from flyte_celery._execution import execute_action
from flyte_celery._run_spec import RunSpec
from flyte_celery._task import TaskTemplate


class LocalController(ChildCalls):
    """Runs child actions as coroutines on `loop` (sync bodies on their own threads), with the shared cache flow.

    `max_action_concurrency` of the run bounds how many children of one parent run at once, so it never blocks a
    parent's own children behind it.
    """

    def __init__(
        self, run: RunSpec, cache: SealedCache | None, loop: asyncio.AbstractEventLoop, mode: Mode = "local"
    ) -> None:
        super().__init__(loop, mode)
        self.run = run
        self.cache = cache

    async def submit(
        self, frame: Frame, task: TaskTemplate[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = self.prepare(frame, task, args, kwargs)
        async with self.limit_for(frame):
            return await execute_action(call, self.run, self, self.cache)

    async def stop(self) -> None:
        if self.cache is not None:
            await self.cache.close()
