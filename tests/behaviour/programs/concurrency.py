"""Fan-out: asyncio.gather / create_task / as_completed, flyte.map (sync and async) and concurrency bounds.

Children that must overlap show it with files in a folder the test passes in, so it holds when they run in other
worker processes. A child holds a `running-<index>` marker while it runs, and takes an arrival rank by creating
`arrived-<rank>`. The first `together` arrivals meet: none leaves until `together` have arrived, so that count is
reached only while all of them are in flight at once. A child that gives up waiting (after a generous deadline)
leaves a `gave-up-<rank>` file so that the others stop counting it, and reports the count it reached: a missed
meeting shows in the value the test asserts on, never as a hang.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import flyte_celery as flyte
from flyte_celery.errors import BaseRuntimeError
from tests.behaviour.programs._files import RUNNING_PREFIX, running_count

env = flyte.TaskEnvironment("behaviour-concurrency")

ARRIVED_PREFIX: Final = "arrived-"
GAVE_UP_PREFIX: Final = "gave-up-"
DONE_PREFIX: Final = "done-"
POLL_INTERVAL_S: Final = 0.01
# On a loaded machine a child may wait long for a worker slot; past this, a meeting counts as missed.
MEETING_DEADLINE_S: Final = 30.0
# Only a child started while it should not be shows a bound broken, so the children that met keep their slots this
# long, watching for one. Load can make this miss a broken bound; it never fails a kept one.
EXCESS_WATCH_S: Final = 1.0


def _files(folder: str, prefix: str) -> int:
    return sum(1 for _ in Path(folder).glob(f"{prefix}*"))


def _arrive(folder: str) -> int:
    """This child's arrival rank in `folder`: 0 for the first caller, 1 for the next, ... (across processes)."""
    rank = 0
    while True:
        try:
            (Path(folder) / f"{ARRIVED_PREFIX}{rank}").touch(exist_ok=False)
        except FileExistsError:
            rank += 1
        else:
            return rank


def _meeting_in_flight(folder: str, together: int) -> int:
    """How many of the first `together` arrivals are waiting at the meeting now (arrivals first: see module doc)."""
    arrived = min(_files(folder, ARRIVED_PREFIX), together)
    return arrived - _files(folder, GAVE_UP_PREFIX)


async def _poll(count: Callable[[], int], done: Callable[[int], bool], deadline_s: float) -> int:
    """Poll `count()` until `done(largest count seen)` or the deadline; returns the largest count seen."""
    end = time.monotonic() + deadline_s
    seen = count()
    while not done(seen) and time.monotonic() < end:
        await asyncio.sleep(POLL_INTERVAL_S)
        seen = max(seen, count())
    return seen


@env.task
async def probe(index: int, folder: str, together: int, watch_excess: bool = False) -> int:
    """Runs in `folder`; the first `together` children to arrive wait until all `together` run at once.

    With `watch_excess` those then keep their slots for `EXCESS_WATCH_S`, watching for more than `together`
    children running. Returns the largest number of children it saw in flight at once (itself included).
    """
    mine = Path(folder) / f"{RUNNING_PREFIX}{index}"
    mine.touch()
    try:
        seen = running_count(folder)
        rank = _arrive(folder)
        if rank < together:
            met = await _poll(lambda: _meeting_in_flight(folder, together), lambda n: n >= together, MEETING_DEADLINE_S)
            if met < together:
                (Path(folder) / f"{GAVE_UP_PREFIX}{rank}").touch()
            seen = max(seen, met)
            if watch_excess:
                in_flight = functools.partial(running_count, folder)
                seen = max(seen, await _poll(in_flight, lambda n: n > together, EXCESS_WATCH_S))
        return max(seen, running_count(folder))
    finally:
        mine.unlink()


@env.task
async def finish_after_later_ones(index: int, folder: str, n: int) -> int:
    """Finishes once children `index + 1 .. n - 1` have, so children end in reverse order of their index.

    Returns `index`, or -1 if the later ones did not all finish before the deadline.
    """
    later = [Path(folder) / f"{DONE_PREFIX}{i}" for i in range(index + 1, n)]
    finished = await _poll(lambda: sum(path.exists() for path in later), lambda k: k == len(later), MEETING_DEADLINE_S)
    (Path(folder) / f"{DONE_PREFIX}{index}").touch()
    return index if finished == len(later) else -1


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
async def gather_probes(folder: str, n: int, together: int) -> list[int]:
    return list(await asyncio.gather(*(probe(i, folder, together) for i in range(n))))


@env.task
async def create_task_probes(folder: str, n: int, together: int) -> list[int]:
    tasks = [asyncio.create_task(probe(i, folder, together)) for i in range(n)]
    return [await task for task in tasks]


@env.task
async def as_completed_probes(folder: str, n: int, together: int) -> list[int]:
    return [await done for done in asyncio.as_completed([probe(i, folder, together) for i in range(n)])]


@env.task
async def gather_finishing_in_reverse(folder: str, n: int) -> list[int]:
    """Children finish last-to-first; gather still returns their results in argument order."""
    return list(await asyncio.gather(*(finish_after_later_ones(i, folder, n) for i in range(n))))


@env.task
async def gather_with_failures() -> list[Any]:
    results = await asyncio.gather(square(2), fail_on_odd(3), square(4), return_exceptions=True)
    return [r if isinstance(r, int) else (type(r).__name__, getattr(r, "code", None)) for r in results]


@env.task
async def probes_under_run_bound(folder: str, n: int, bound: int) -> list[int]:
    """Gathers `n` probes; the run's `max_action_concurrency` should let exactly `bound` run at once."""
    return list(await asyncio.gather(*(probe(i, folder, bound, watch_excess=True) for i in range(n))))


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
    probe_in = functools.partial(probe, folder=folder, together=concurrency, watch_excess=True)
    return list(flyte.map(probe_in, range(n), concurrency=concurrency))


@env.task
async def map_async_bounded(folder: str, n: int, concurrency: int) -> list[int]:
    probe_in = functools.partial(probe, folder=folder, together=concurrency, watch_excess=True)
    return [r async for r in flyte.map.aio(probe_in, range(n), concurrency=concurrency)]


@env.task
async def map_async_unbounded(folder: str, n: int) -> list[int]:
    probe_in = functools.partial(probe, folder=folder, together=n)
    return [r async for r in flyte.map.aio(probe_in, range(n))]


@env.task
async def map_from_async_without_aio() -> str:
    try:
        list(flyte.map(square, [1]))
    except BaseRuntimeError as err:
        return type(err).__name__
    return "no error"
