"""Programs for the shutdown and crash tests: parents that wait on slow children, counting executions in Redis."""

from __future__ import annotations

import asyncio

import flyte_celery as flyte
from tests.integration.programs._executions import count

env = flyte.TaskEnvironment("slow")


@env.task
async def slow_leaf(i: int, seconds: float) -> int:
    count(f"leaf-{i}")
    await asyncio.sleep(seconds)
    return i


@env.task
async def sequential_parent(n: int, seconds: float) -> int:
    """Awaits `n` slow children one after the other, so a stop in the middle leaves finished and pending ones."""
    count("parent")
    total = 0
    for i in range(n):
        total += await slow_leaf(i, seconds)
    return total


@env.task
def busy(seconds: float) -> int:
    """Holds its worker slot for `seconds` (CPU-bound, in the task body)."""
    import time

    count("busy")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return 1


@env.task(timeout=flyte.Timeout(max_queued_time=0.3))
async def impatient() -> int:
    return 1
