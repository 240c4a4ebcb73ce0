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
from redis.exceptions import NoScriptError, ResponseError

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
            pipe = self.redis.pipeline(transaction=False)
            build(pipe)
            replies: list[Any] = await self._run(pipe)
            if not any(isinstance(reply, NoScriptError) for reply in replies):
                error = next((reply for reply in replies if isinstance(reply, Exception)), None)
                if error is not None:
                    raise error
                return replies
            if undo is not None:
                await undo(replies)
            await self.load()
        raise RuntimeSystemError("ScriptsLost", "Redis lost our Lua scripts again right after they were loaded")

    async def _run(self, pipe: Pipeline) -> list[Any]:
        """The replies to the commands queued in `pipe`, sent together on one pooled connection; an error reply is
        returned in its command's place (as redis-py's `execute(raise_on_error=False)` does).

        redis-py's own pipeline execution takes seven event-loop turns, two of them to start tasks for its timeouts;
        sending and reading on the connection directly takes four and about 40 µs less, on each of the three round
        trips a child action adds to its parent's wait. Retries and health checks are the connection's, as there.
        """
        commands = pipe.command_stack
        pool = self.redis.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            replies = await connection.retry.call_with_retry(
                lambda: _send_and_read(connection, commands),
                lambda error: _disconnect_unless_retried(connection, error),
            )
        finally:
            await pool.release(connection)
        callbacks = pipe.response_callbacks
        return [
            reply if isinstance(reply, Exception) or args[0] not in callbacks else callbacks[args[0]](reply, **options)
            for (args, options), reply in zip(commands, replies, strict=True)
        ]


async def _send_and_read(connection: Any, commands: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
    await connection.send_packed_command(connection.pack_commands([args for args, _ in commands]))
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(await connection.read_response())
        except ResponseError as error:
            replies.append(error)
    return replies


async def _disconnect_unless_retried(connection: Any, error: Exception) -> None:
    await connection.disconnect()
    retried = connection.retry_on_error
    if not retried or not isinstance(error, tuple(retried)):
        raise error
