"""Our Lua scripts on one Redis client, run by their SHA inside pipelines.

redis-py checks every script of a pipeline with `SCRIPT EXISTS` before running it: one more round trip for each
start, attach and completion. Here the scripts are loaded once (`load`), run with `EVALSHA`, and loaded again only
when Redis answers that it lost them (after a restart), before the pipeline is run a second time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from flyte_celery.errors import RuntimeSystemError

Pipeline = Any  # redis.asyncio's pipeline (its generic type is not worth spelling out here)


class Scripts:
    """Named Lua scripts, queued into pipelines by name."""

    def __init__(self, redis: aioredis.Redis, texts: Mapping[str, str]) -> None:
        self.redis = redis
        self.texts = dict(texts)
        self.sha = {name: hashlib.sha1(text.encode()).hexdigest() for name, text in texts.items()}

    async def load(self) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for text in self.texts.values():
                pipe.script_load(text)
            await pipe.execute()

    def queue(self, pipe: Pipeline, name: str, keys: Sequence[str], args: Sequence[Any]) -> None:
        pipe.evalsha(self.sha[name], len(keys), *keys, *args)

    async def execute(
        self,
        build: Callable[[Pipeline], None],
        undo: Callable[[list[Any]], Awaitable[None]] | None = None,
    ) -> list[Any]:
        """Run the pipeline `build` fills; if Redis lost a script, `undo` what the other commands did (given the
        replies), load the scripts and run it once more.

        Raises:
            The first error a command of the pipeline returned.
        """
        for _ in range(2):
            async with self.redis.pipeline(transaction=False) as pipe:
                build(pipe)
                replies: list[Any] = await pipe.execute(raise_on_error=False)
            if not any(isinstance(reply, NoScriptError) for reply in replies):
                error = next((reply for reply in replies if isinstance(reply, Exception)), None)
                if error is not None:
                    raise error
                return replies
            if undo is not None:
                await undo(replies)
            await self.load()
        raise RuntimeSystemError("ScriptsLost", "Redis lost our Lua scripts again right after they were loaded")
