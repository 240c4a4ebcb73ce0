"""The example of the run-context spec (`/work/shared/spec/run-context.md`), unchanged but for the import."""

from __future__ import annotations

import flyte_celery as flyte

env = flyte.TaskEnvironment("run-context-example")


@env.task
async def process(n: int) -> int:
    return n * 2


@env.task
async def root() -> int:
    return await process(21)


@env.task
async def inspect_context() -> str:
    ctx = flyte.ctx()
    assert ctx is not None
    action = ctx.action
    return f"run={action.run_name}, action={action.name}, mode={ctx.mode}, in_cluster={ctx.is_in_cluster()}"
