"""`@flyte.trace` helpers of every kind, and `flyte.group` blocks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import flyte_celery as flyte
from flyte_celery.errors import TraceDoesNotAllowNestedTasksError

env = flyte.TaskEnvironment("behaviour-tracing")


def _names() -> dict[str, str | None]:
    ctx = flyte.ctx()
    assert ctx is not None
    return {"action": ctx.action.name, "task_action": ctx.task_action.name if ctx.task_action else None}


@flyte.trace
async def traced_async(x: int) -> dict[str, Any]:
    return {**_names(), "value": x * 3}


@flyte.trace
def traced_sync(x: int) -> dict[str, Any]:
    return {**_names(), "value": x * 3}


@flyte.trace
def traced_generator(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {**_names(), "value": i}


@flyte.trace
async def traced_async_generator(n: int) -> AsyncIterator[dict[str, Any]]:
    for i in range(n):
        yield {**_names(), "value": i}


@env.task
async def triple(x: int) -> int:
    return x * 3


@flyte.trace
async def trace_calling_a_task(x: int) -> int:
    return await triple(x)


@env.task
async def use_async_traces() -> dict[str, Any]:
    return {
        "task": _names(),
        "async": await traced_async(2),
        "async_again": await traced_async(2),
        "sync": traced_sync(2),
        "generator": list(traced_generator(2)),
        "async_generator": [item async for item in traced_async_generator(2)],
        "after": _names(),
    }


@env.task
def use_sync_traces() -> dict[str, Any]:
    return {"task": _names(), "sync": traced_sync(5), "generator": list(traced_generator(1)), "after": _names()}


@env.task
async def nest_task_in_trace() -> str:
    try:
        await trace_calling_a_task(1)
    except TraceDoesNotAllowNestedTasksError as err:
        return type(err).__name__
    return "no error"


@env.task
async def nest_task_in_trace_uncaught() -> int:
    return await trace_calling_a_task(1)


def _group() -> str | None:
    ctx = flyte.ctx()
    assert ctx is not None
    return ctx.group_data.name if ctx.group_data else None


@env.task
async def echo_group(tag: str) -> str | None:
    """What a child sees of its caller's group: nothing (the group belongs to the caller)."""
    return _group()


@env.task
async def use_groups() -> dict[str, Any]:
    seen: dict[str, Any] = {"before": _group()}
    with flyte.group("outer"):
        seen["outer"] = _group()
        seen["outer_result"] = await triple(1)
        with flyte.group("inner"):
            seen["inner"] = _group()
        seen["back_to_outer"] = _group()
        seen["child_sees"] = await echo_group("x")
    seen["after"] = _group()
    return seen


@flyte.trace
def outside_sync(x: int) -> tuple[int, bool]:
    return x + 1, flyte.ctx() is not None


@flyte.trace
async def outside_async(x: int) -> tuple[int, bool]:
    return x + 1, flyte.ctx() is not None


@flyte.trace
def outside_generator(n: int) -> Iterator[int]:
    yield from range(n)


@flyte.trace
async def outside_async_generator(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


@flyte.trace
async def traced_failure(x: int) -> int:
    raise KeyError(x)


@env.task
async def catch_trace_failure() -> str:
    """A trace is not an action boundary for errors: the task catches the original exception."""
    try:
        await traced_failure(1)
    except KeyError as err:
        return f"KeyError {err}"
    return "no error"
