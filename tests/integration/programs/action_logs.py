"""Programs for the per-action log tests: actions that print and log markers, concurrently hosted siblings that
interleave their output, a sync child, and an action that prints far more than the capture keeps."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time

import redis.asyncio as aioredis

import flyte_celery as flyte

env = flyte.TaskEnvironment("action_logs")
LIBRARY_LOGGER = "tests.action_logs.library"
BIG_LINE_CHARS = 10_000
BIG_LINES = 1_000  # 1,000 lines of 10,000 characters: 10 MB
MEET_DEADLINE_S = 60.0
POLL_S = 0.05
GATE_SUFFIX = ":go"


def cluster_async_redis() -> aioredis.Redis:
    return aioredis.Redis.from_url(os.environ["FLYTE_CELERY_REDIS_URL"])


def _library_logger() -> logging.Logger:
    logger = logging.getLogger(LIBRARY_LOGGER)
    logger.setLevel(logging.INFO)  # a library logger set to INFO by its user: its records are captured too
    return logger


async def _meet(tag: str, n: int) -> None:
    """Returns once `n` callers of `tag` are in flight at once (they are hosted together), or fails."""
    client = cluster_async_redis()
    try:
        await client.incr(f"{tag}:in")
        deadline = time.monotonic() + MEET_DEADLINE_S
        while int(await client.get(f"{tag}:in") or 0) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {n} children of {tag} were never in flight at once")
            await asyncio.sleep(POLL_S)
    finally:
        await client.aclose()


@env.task
async def chatty_child(tag: str, i: int, n: int) -> str:
    """Prints the first half of a line, waits until all `n` siblings have done so, then ends the line and logs:
    every sibling holds a partial line at the same time in the same process."""
    print(f"print-{tag}-{i}-one", end="")
    await _meet(tag, n)
    print(f" print-{tag}-{i}-two")  # the first half stayed buffered as this action's partial line until now
    flyte.logger.info("user-log-%s-%d", tag, i)
    _library_logger().info("library-log-%s-%d", tag, i)
    print(f"stderr-{tag}-{i}", file=sys.stderr)
    return flyte.ctx().action.name


@env.task
def sync_child(tag: str) -> str:
    print(f"sync-print-{tag}")
    flyte.logger.info("sync-log-%s", tag)
    return flyte.ctx().action.name


@env.task
async def chatty_root(tag: str, n: int) -> list[str]:
    """Prints its own markers, then gathers `n` async children and one sync child; returns their action names."""
    print(f"root-print-{tag}")
    flyte.logger.info("root-log-%s", tag)
    names = list(await asyncio.gather(*(chatty_child(tag, i, n) for i in range(n)), sync_child.aio(tag)))
    print(f"root-after-{tag}", end="")  # a partial line, flushed when the action ends
    return names


@env.task
async def flood(tag: str) -> int:
    """Prints 10 MB: the capture keeps its head and tail only."""
    line = "x" * (BIG_LINE_CHARS - 1)
    print(f"flood-first-{tag}")
    for _ in range(BIG_LINES):
        sys.stdout.write(line + "\n")
    print(f"flood-last-{tag}")
    return BIG_LINES


@env.task
async def gated_printer(tag: str) -> str:
    """Prints a line, then runs until the test opens the gate `<tag>:go` (long enough for a periodic write)."""
    print(f"early-{tag}")
    client = cluster_async_redis()
    try:
        deadline = time.monotonic() + MEET_DEADLINE_S
        while not await client.exists(tag + GATE_SUFFIX):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the gate of {tag} never opened")
            await asyncio.sleep(POLL_S)
    finally:
        await client.aclose()
    print(f"late-{tag}")
    return tag
