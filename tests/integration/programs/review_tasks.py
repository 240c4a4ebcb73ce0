"""Programs for the adversarial review of the remote/hybrid machinery: gated children, retrying parents,
counters and interval recorders in Redis (the tests read them to see what ran where and when)."""

from __future__ import annotations

import asyncio
import time

import flyte_celery as flyte
from tests.integration.programs._executions import cluster_redis, count

env = flyte.TaskEnvironment("review")
GATE_DEADLINE_S = 30.0
GATE_POLL_S = 0.002


def _record_interval(name: str, start: float) -> None:
    client = cluster_redis()
    try:
        client.rpush(f"review:intervals:{name}", f"{start}:{time.time()}")
    finally:
        client.close()


@env.task
def gated(gate: str) -> int:
    """Says it started, then returns as soon as the key `gate` exists (so a test decides when it ends)."""
    client = cluster_redis()
    try:
        client.set(f"{gate}:started", "1")
        deadline = time.monotonic() + GATE_DEADLINE_S
        while not client.exists(gate) and time.monotonic() < deadline:
            time.sleep(GATE_POLL_S)
    finally:
        client.close()
    return 1


@env.task
async def gated_parent(gate: str) -> int:
    return await gated.aio(gate) + 1


@env.task
async def leaf(x: int) -> int:
    return x + 1


@env.task(retries=1)
async def retrying_root(x: int) -> int:
    """A root with one retry whose only work is a child: a failed child call is retried once."""
    return await leaf.aio(x)


@env.task
async def waits_for_marker(marker: str) -> int:
    """Runs until the key `marker` exists (a test sets it after aborting the run), then returns 42."""
    client = cluster_redis()
    try:
        deadline = time.monotonic() + GATE_DEADLINE_S
        while not client.exists(marker) and time.monotonic() < deadline:  # noqa: ASYNC110 - the event is in Redis
            await asyncio.sleep(0.02)
    finally:
        client.close()
    return 42


# Checks that should hold (and do): names, seq numbers, map concurrency, sync parents, max_action_concurrency.
@env.task
async def counted(tag: str, x: int) -> int:
    count(f"{tag}-{x}", "review:executions")
    return x


@env.task
def counted_sync(tag: str, x: int) -> int:
    count(f"{tag}-{x}", "review:executions")
    return x


@env.task
async def spans(tag: str, i: int, seconds: float) -> int:
    start = time.time()
    await asyncio.sleep(seconds)
    _record_interval(tag, start)
    return i


@env.task
async def caller_a(x: int) -> int:
    return await counted.aio("shared", x)


@env.task
async def caller_b(x: int) -> int:
    return await counted.aio("shared", x)


@env.task
def sync_parent(n: int) -> int:
    """A sync body calling children from its thread, and `flyte.map` with a window of 2."""
    direct = counted_sync("sync", n)
    mapped = list(flyte.map(spans, ["sync-map"] * 4, range(4), [0.3] * 4, concurrency=2))
    return direct + sum(mapped)


@env.task
async def checks_root(n: int) -> dict[str, int]:
    """Exercises the cases the tests then verify from the counters and intervals in Redis."""
    twice = await asyncio.gather(counted.aio("twice", n), counted.aio("twice", n))
    two_parents = await asyncio.gather(caller_a.aio(n), caller_b.aio(n))
    mapped = [r async for r in flyte.map.aio(spans, ["map"] * 4, range(4), [0.3] * 4, concurrency=2)]
    from_sync = await sync_parent.aio(n)
    return {
        "twice": sum(twice),
        "two_parents": sum(two_parents),
        "mapped": sum(mapped),
        "from_sync": from_sync,
    }


@env.task
async def bounded_root(n: int) -> int:
    """Run with `max_action_concurrency=2`: at most two of these children may overlap."""
    return sum(await asyncio.gather(*(spans.aio("bounded", i, 0.3) for i in range(n))))


SERIALIZED_SECONDS = 1.0
serialized_runs: list[int] = []  # local mode only: the run is in this process


@env.task(cache=flyte.Cache(behavior="auto", serialize=True))
def serialized(x: int) -> int:
    serialized_runs.append(x)
    time.sleep(SERIALIZED_SECONDS)
    return x * 10


@env.task
async def two_serialized(x: int) -> list[int]:
    return list(await asyncio.gather(serialized.aio(x), serialized.aio(x)))
