"""Synchronous task bodies, mixed with async ones; `forward` and `override`."""

from __future__ import annotations

import uuid
from typing import Any

import flyte_celery as flyte
from flyte_celery.errors import SyncTaskCallInAsyncContextError
from tests.behaviour.programs._files import append_line

env = flyte.TaskEnvironment("behaviour-sync-tasks")


@env.task
def increment(n: int) -> int:
    return n + 1


@env.task
def sync_parent(n: int) -> int:
    return increment(n) + increment(n + 10)


@env.task
def sync_grandparent(n: int) -> int:
    return sync_parent(n) * 2


@env.task
async def async_parent_awaiting_aio(n: int) -> int:
    first: int = await increment.aio(n)
    second: int = await increment.aio(n + 1)
    return first + second


@env.task
async def async_parent_calling_sync_directly(n: int) -> str:
    try:
        return str(increment(n))
    except SyncTaskCallInAsyncContextError as err:
        return type(err).__name__


@env.task
async def async_parent_calling_sync_directly_uncaught(n: int) -> int:
    return increment(n)


@env.task
async def async_double(n: int) -> int:
    return n * 2


@env.task
def sync_parent_of_async(n: int) -> int:
    """A sync body reaching an async child through `flyte.map` (blocking)."""
    return sum(flyte.map(async_double, [n, n + 1]))


@env.task
async def action_name() -> str:
    ctx = flyte.ctx()
    assert ctx is not None
    return ctx.action.name


@env.task
async def forward_vs_call() -> dict[str, str]:
    ctx = flyte.ctx()
    assert ctx is not None
    return {"self": ctx.action.name, "forwarded": await action_name.forward(), "called": await action_name()}


@env.task
async def fresh_token(x: int) -> str:
    return uuid.uuid4().hex


@env.task
async def override_cache_in_parent(x: int) -> list[str]:
    cached = fresh_token.override(cache="auto")
    return [await cached(x), await cached(x), await fresh_token(x)]


@env.task
async def failing_once(log: str) -> int:
    ctx = flyte.ctx()
    assert ctx is not None
    append_line(log, str(ctx.attempt_number))
    if ctx.attempt_number == 0:
        raise ValueError("first attempt fails")
    return ctx.attempt_number


@env.task
async def override_retries_in_parent(log: str) -> int:
    return await failing_once.override(retries=flyte.RetryStrategy(1, backoff=flyte.Backoff(0.01)))(log)


@env.task
async def describe_task_settings() -> dict[str, Any]:
    changed = fresh_token.override(cache="auto", retries=3)
    return {
        "original_cache": fresh_token.cache.behavior,
        "changed_cache": changed.cache.behavior,
        "changed_retries": changed.retries.count,
        "same_name": changed.name == fresh_token.name,
    }
