"""Programs for the offloading tests: inputs and outputs far bigger than a broker message should carry."""

from __future__ import annotations

import flyte_celery as flyte

env = flyte.TaskEnvironment("big_data")
LIMIT = 256 * 1024 * 1024  # max_inline_io_bytes of the big tasks, above Flyte's 10 MiB default


@env.task(max_inline_io_bytes=LIMIT)
async def produce(size: int) -> bytes:
    return bytes(range(256)) * (size // 256)


@env.task(max_inline_io_bytes=LIMIT)
async def consume(data: bytes) -> int:
    return len(data) + data[-1]


@env.task(max_inline_io_bytes=LIMIT)
async def big_round_trip(size: int) -> int:
    """A big output of one child becomes the big input of another."""
    return await consume(await produce(size))


@env.task
async def over_the_limit(size: int) -> bytes:
    return b"x" * size  # over Flyte's default max_inline_io_bytes of 10 MiB when size is


@env.task
async def calls_with_a_big_input(size: int) -> int:
    return await consume_small_limit(b"y" * size)


@env.task
async def consume_small_limit(data: bytes) -> int:
    return len(data)
