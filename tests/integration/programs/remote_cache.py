"""Programs for the remote cache tests: cached tasks that count their executions in Redis (`test:executions`)."""

from __future__ import annotations

import asyncio

import flyte_celery as flyte
from tests.integration.programs._executions import count

env = flyte.TaskEnvironment("remote_cache")
SLOW_SECONDS = 0.5


@env.task(cache="auto")
async def cached_square(x: int) -> int:
    count(f"square-{x}")
    return x * x


@env.task
async def parent_of_cached(x: int) -> int:
    """Calls the cached task as a child, so the worker (not the client) computes the cache key."""
    return await cached_square(x)


@env.task(cache=flyte.Cache(behavior="auto", serialize=True))
async def slow_cached(x: int) -> int:
    count("slow_cached")
    await asyncio.sleep(SLOW_SECONDS)
    return x * 10


@env.task
async def gather_slow_cached(x: int) -> list[int]:
    """Four identical calls at once: with `serialize=True` only one of them may execute."""
    return list(await asyncio.gather(*(slow_cached(x) for _ in range(4))))
