"""Programs for the async-hosting tests: leaves that meet (all of them must be in flight at once to go on), wait on
a gate, block their event loop, or run traces; they report where they ran and count executions in Redis."""

from __future__ import annotations

import asyncio
import os
import time

import redis.asyncio as aioredis

import flyte_celery as flyte
from tests.integration.programs._executions import count

env = flyte.TaskEnvironment("hosting")
MEET_DEADLINE_S = 60.0
POLL_S = 0.05
# A queue no worker serves until a test starts one for it.
LATE_QUEUE = "flyte-celery-tests-late"


def _redis() -> aioredis.Redis:
    return aioredis.Redis.from_url(os.environ["FLYTE_CELERY_REDIS_URL"])


@env.task
async def meet(tag: str, n: int, i: int) -> int:
    """Waits (without computing) until `n` leaves of `tag` are in flight at once; returns its process id, or -1 if
    they never all were within the deadline."""
    client = _redis()
    try:
        await client.incr(f"{tag}:in")
        deadline = time.monotonic() + MEET_DEADLINE_S
        while int(await client.get(f"{tag}:in") or 0) < n:
            if time.monotonic() > deadline:
                return -1
            await asyncio.sleep(POLL_S)
        return os.getpid()
    finally:
        await client.aclose()


@env.task
async def meeting(tag: str, n: int) -> list[int]:
    return list(await asyncio.gather(*(meet(tag, n, i) for i in range(n))))


@env.task
async def gated(tag: str, i: int) -> int:
    """Counts its execution, announces it is in flight, then waits for the gate `<tag>:go` to open."""
    count(f"{tag}-{i}")
    client = _redis()
    try:
        await client.incr(f"{tag}:in")
        while not await client.exists(f"{tag}:go"):  # noqa: ASYNC110 - the gate is in Redis, not in this process
            await asyncio.sleep(0.2)
        return i
    finally:
        await client.aclose()


@env.task
async def gated_many(tag: str, n: int) -> int:
    return sum(await asyncio.gather(*(gated(tag, i) for i in range(n))))


@env.task
async def hog(seconds: float) -> str:
    time.sleep(seconds)  # noqa: ASYNC251 - blocks the event loop: the mistake the loop watch reports
    return "done"


@flyte.trace
async def traced_step(tag: str) -> int:
    count(f"{tag}-trace")
    return 7


@env.task(queue=LATE_QUEUE)
async def late_child(x: int) -> int:
    return x + 1


@env.task
async def parent_with_trace_and_late_child(tag: str) -> int:
    """A traced step, then a child on a queue that nobody serves yet: the parent waits there."""
    count(f"{tag}-parent")
    step = await traced_step(tag)
    return step + await late_child(1)


@env.task
async def checkpointed(tag: str) -> str:
    """Saves a checkpoint and waits (forever, unless taken over); a take-over finds the checkpoint and returns."""
    context = flyte.ctx()
    assert context is not None
    saved = await context.checkpoint.load.aio()
    if saved is not None:
        return f"resumed from {saved.read_text()}"
    await context.checkpoint.save.aio(f"{tag}-state".encode())
    count(f"{tag}-saved")
    await asyncio.Event().wait()  # never set: only a take-over finishes this action
    return "unreachable"
