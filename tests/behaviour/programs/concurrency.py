"""Fan-out: asyncio.gather / create_task / as_completed, flyte.map (sync and async) and concurrency bounds."""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path
from typing import Any

import flyte_celery as flyte
from flyte_celery.errors import BaseRuntimeError
from tests.behaviour.programs._files import RUNNING_PREFIX, running_count, wait_for_count

env = flyte.TaskEnvironment("behaviour-concurrency")
# How long a probe keeps its slot after its barrier, so that a start beyond the bound would be counted.
PROBE_HOLD_S = 0.05


@env.task
async def nap(i: int, seconds: float) -> int:
    await asyncio.sleep(seconds)
    return i


@env.task
async def square(n: int) -> int:
    return n * n


@env.task
async def add(n: int, offset: int) -> int:
    return n + offset


@env.task
async def fail_on_odd(n: int) -> int:
    if n % 2:
        raise ValueError(f"odd input {n}")
    return n


@env.task
async def probe(index: int, folder: str, wait_for: int) -> int:
    """Marks itself running in `folder`; the first `wait_for` probes wait until `wait_for` run at once.

    Returns the largest number of probes it saw running at the same time (itself included).
    """
    mine = Path(folder) / f"{RUNNING_PREFIX}{index}"
    mine.touch()
    try:
        seen = running_count(folder)
        if index < wait_for:
            seen = max(seen, await wait_for_count(folder, wait_for))
        await asyncio.sleep(PROBE_HOLD_S)
        return max(seen, running_count(folder))
    finally:
        mine.unlink()


@env.task
async def gather_naps(n: int, seconds: float) -> dict[str, Any]:
    start = time.monotonic()
    results = await asyncio.gather(*(nap(i, seconds) for i in range(n)))
    return {"results": list(results), "elapsed": time.monotonic() - start}


@env.task
async def create_task_naps(n: int, seconds: float) -> dict[str, Any]:
    start = time.monotonic()
    tasks = [asyncio.create_task(nap(i, seconds)) for i in range(n)]
    results = [await task for task in tasks]
    return {"results": results, "elapsed": time.monotonic() - start}


@env.task
async def as_completed_naps(n: int, seconds: float) -> dict[str, Any]:
    start = time.monotonic()
    results = [await done for done in asyncio.as_completed([nap(i, seconds) for i in range(n)])]
    return {"results": results, "elapsed": time.monotonic() - start}


@env.task
async def gather_probes(folder: str, n: int) -> list[int]:
    """All `n` children must run at once for any of them to see `n` running."""
    return list(await asyncio.gather(*(probe(i, folder, n) for i in range(n))))


@env.task
async def gather_with_failures() -> list[Any]:
    results = await asyncio.gather(square(2), fail_on_odd(3), square(4), return_exceptions=True)
    return [r if isinstance(r, int) else (type(r).__name__, getattr(r, "code", None)) for r in results]


@env.task
async def probes_under_run_bound(folder: str, n: int, bound: int) -> list[int]:
    """Gathers `n` probes; the run's `max_action_concurrency` should let at most `bound` run at once."""
    return list(await asyncio.gather(*(probe(i, folder, bound) for i in range(n))))


def _as_value(item: object) -> object:
    if isinstance(item, BaseRuntimeError):
        return (type(item).__name__, item.code)
    return item


@env.task
def map_sync(xs: list[int]) -> list[int]:
    return list(flyte.map(square, xs))


@env.task
async def map_async(xs: list[int]) -> list[int]:
    return [r async for r in flyte.map.aio(square, xs)]


@env.task
def map_sync_partial(xs: list[int], offset: int) -> list[int]:
    return list(flyte.map(functools.partial(add, offset=offset), xs))


@env.task
async def map_async_partial(xs: list[int], offset: int) -> list[int]:
    return [r async for r in flyte.map.aio(functools.partial(add, offset=offset), xs)]


@env.task
async def map_async_two_iterables(xs: list[int], offsets: list[int]) -> list[int]:
    return [r async for r in flyte.map.aio(add, xs, offsets)]


@env.task
def map_sync_errors(xs: list[int]) -> list[Any]:
    return [_as_value(r) for r in flyte.map(fail_on_odd, xs)]


@env.task
async def map_async_errors(xs: list[int]) -> list[Any]:
    return [_as_value(r) async for r in flyte.map.aio(fail_on_odd, xs)]


@env.task
def map_sync_raising(xs: list[int]) -> list[Any]:
    try:
        return list(flyte.map(fail_on_odd, xs, return_exceptions=False))
    except BaseRuntimeError as err:
        return ["raised", type(err).__name__, err.code]


@env.task
async def map_async_raising(xs: list[int]) -> list[Any]:
    try:
        return [r async for r in flyte.map.aio(fail_on_odd, xs, return_exceptions=False)]
    except BaseRuntimeError as err:
        return ["raised", type(err).__name__, err.code]


@env.task
async def map_async_uncaught(xs: list[int]) -> list[int]:
    return [r async for r in flyte.map.aio(fail_on_odd, xs, return_exceptions=False)]


@env.task
def map_sync_bounded(folder: str, n: int, concurrency: int) -> list[int]:
    probe_in = functools.partial(probe, folder=folder, wait_for=concurrency)
    return list(flyte.map(probe_in, range(n), concurrency=concurrency))


@env.task
async def map_async_bounded(folder: str, n: int, concurrency: int) -> list[int]:
    probe_in = functools.partial(probe, folder=folder, wait_for=concurrency)
    return [r async for r in flyte.map.aio(probe_in, range(n), concurrency=concurrency)]


@env.task
async def map_async_unbounded(folder: str, n: int) -> list[int]:
    probe_in = functools.partial(probe, folder=folder, wait_for=n)
    return [r async for r in flyte.map.aio(probe_in, range(n))]


@env.task
async def map_from_async_without_aio() -> str:
    try:
        list(flyte.map(square, [1]))
    except BaseRuntimeError as err:
        return type(err).__name__
    return "no error"
