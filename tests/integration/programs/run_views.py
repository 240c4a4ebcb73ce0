"""Programs for the tests of `flyte_celery.remote` and the `runs`/`get`/`abort`/`run --follow` commands: fan-outs
with succeeding and failing children, a report, and a root that waits until it is aborted."""

from __future__ import annotations

import asyncio

import flyte_celery as flyte
from flyte_celery import report

env = flyte.TaskEnvironment("run_views")
FAIL_EVERY = 100  # in a fan-out, the children i with i % FAIL_EVERY == FAILING_REMAINDER fail
FAILING_REMAINDER = 7
WAIT_S = 3600.0


@env.task
async def leaf(i: int) -> int:
    if i % FAIL_EVERY == FAILING_REMAINDER:
        print(f"leaf {i} is about to refuse")
        raise ValueError(f"leaf {i} refuses")
    return 2 * i


@env.task
async def fan_out(n: int) -> int:
    """Runs `n` leaves at once; fails (after all of them ended) if any failed."""
    results = await asyncio.gather(*(leaf(i) for i in range(n)), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        raise RuntimeError(f"{len(failed)} of {n} leaves failed")
    return sum(r for r in results if isinstance(r, int))


@env.task
async def all_good(n: int) -> int:
    """Runs `n` leaves that all succeed; returns their sum."""
    values = await asyncio.gather(*(leaf(FAIL_EVERY * i) for i in range(n)))
    return sum(values)


@env.task(report=True)
async def reported(n: int) -> int:
    """Succeeds, with a report, after one leaf."""
    report.log(f"<p>n is {n}</p>")
    return await leaf(n)


@env.task
async def waits_forever(tag: str) -> str:
    """Starts a leaf, then sleeps until the run is aborted."""
    await leaf(0)
    await asyncio.sleep(WAIT_S)
    return tag
