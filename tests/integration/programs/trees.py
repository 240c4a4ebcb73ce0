"""Programs for the worker-model tests: deep trees, wide fan-outs, CPU-bound leaves."""

from __future__ import annotations

import asyncio
import os
import time

import flyte_celery as flyte

env = flyte.TaskEnvironment("trees")


@env.task
async def tree(depth: int, fanout: int) -> int:
    """Counts the leaves of a full tree: every inner node waits on `fanout` children."""
    if depth == 0:
        return 1
    counts = await asyncio.gather(*(tree(depth - 1, fanout) for _ in range(fanout)))
    return sum(counts)


@env.task
async def leaf(i: int) -> int:
    return i


@env.task
async def fan(n: int) -> int:
    return sum(await asyncio.gather(*(leaf(i) for i in range(n))))


@env.task
def spin(seconds: float) -> tuple[int, float, float]:
    """Burns CPU for `seconds`; returns the pid and the start and end times."""
    start = time.time()
    x = 0
    while time.time() - start < seconds:
        x += 1
    return os.getpid(), start, time.time()


@env.task
async def two_spins(seconds: float) -> list[tuple[int, float, float]]:
    return list(await asyncio.gather(spin.aio(seconds), spin.aio(seconds)))


@env.task
async def shaky_leaf(i: int) -> int:
    if i % 2:
        raise ValueError(f"odd leaf {i}")
    return i * 10


@env.task
async def mixed(n: int) -> list[int]:
    """Gathers leaves of which the odd ones fail, keeping the failures as values."""
    results = await asyncio.gather(*(shaky_leaf(i) for i in range(n)), return_exceptions=True)
    return [r if isinstance(r, int) else -1 for r in results]
