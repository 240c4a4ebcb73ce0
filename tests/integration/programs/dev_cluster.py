"""A program a client runs against `flyte-celery dev`: a parent gathering children, which tells which worker ran it."""

from __future__ import annotations

import asyncio
import os

import flyte_celery as flyte

env = flyte.TaskEnvironment("dev-cluster")


@env.task
async def square(i: int) -> int:
    return i * i


@env.task
async def sum_of_squares(n: int) -> str:
    """The sum of the squares below `n`, and the process id of the worker pool process that computed it."""
    total = sum(await asyncio.gather(*(square(i) for i in range(n))))
    return f"{total} on pid {os.getpid()}"
