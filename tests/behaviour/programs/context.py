"""Tasks that report what `flyte.ctx()` shows them, and the names their children get."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import flyte_celery as flyte

env = flyte.TaskEnvironment("behaviour-context")


def snapshot() -> dict[str, Any]:
    """Every `TaskContext` field of the running task, as plain values."""
    ctx = flyte.ctx()
    assert ctx is not None, "snapshot() must run inside a task"
    action, task_action = ctx.action, ctx.task_action
    return {
        "action_name": action.name,
        "run_name": action.run_name,
        "project": action.project,
        "domain": action.domain,
        "org": action.org,
        "task_action_name": task_action.name if task_action else None,
        "mode": ctx.mode,
        "in_cluster": ctx.is_in_cluster(),
        "version": ctx.version,
        "raw_data_path": ctx.raw_data_path.path,
        "run_base_dir": ctx.run_base_dir,
        "output_path": ctx.output_path,
        "custom_context": dict(ctx.custom_context),
        "disable_run_cache": ctx.disable_run_cache,
        "run_start_time": ctx.run_start_time,
        "attempt_number": ctx.attempt_number,
        "group": ctx.group_data.name if ctx.group_data else None,
    }


@env.task
async def describe() -> dict[str, Any]:
    return snapshot()


@env.task
def describe_sync() -> dict[str, Any]:
    return snapshot()


@env.task
async def child_describe(tag: str) -> dict[str, Any]:
    return snapshot()


@env.task
async def parent_and_child() -> dict[str, Any]:
    """The parent's context and its child's (called once directly, once in a group)."""
    parent = snapshot()
    child = await child_describe("x")
    with flyte.group("my-group"):
        in_group = snapshot()
        grouped_child = await child_describe("y")
    after_group = snapshot()
    return {
        "parent": parent,
        "child": child,
        "in_group": in_group,
        "grouped_child": grouped_child,
        "after": after_group,
    }


@env.task
async def grandparent() -> dict[str, Any]:
    return {"self": snapshot(), "below": await parent_and_child()}


@env.task
async def echo_name(n: int) -> str:
    ctx = flyte.ctx()
    assert ctx is not None
    return ctx.action.name


@env.task
async def child_names() -> dict[str, str]:
    """Child action names: repeated identical calls, a different input, and the same call inside a group."""
    first = await echo_name(1)
    second = await echo_name(1)
    other = await echo_name(2)
    with flyte.group("g"):
        grouped = await echo_name(1)
    return {"first": first, "second": second, "other": other, "grouped": grouped}


@env.task(cache=flyte.Cache("override", version_override="cache-v7"))
async def cached_version(token: str) -> str:
    ctx = flyte.ctx()
    assert ctx is not None
    return ctx.version


@env.task
async def uncached_version() -> str:
    ctx = flyte.ctx()
    assert ctx is not None
    return ctx.version


@env.task
async def versions() -> dict[str, str]:
    return {"cached": await cached_version("t"), "uncached": await uncached_version()}


@env.task
async def start_times() -> list[datetime | None]:
    ctx = flyte.ctx()
    assert ctx is not None
    child = await child_describe("t")
    return [ctx.run_start_time, child["run_start_time"]]
