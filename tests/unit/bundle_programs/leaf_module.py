"""Tasks reached from `graph` only through attribute access on this module (`leaf_module.leaf_task`)."""

from __future__ import annotations

import flyte_celery as flyte

leaf_env = flyte.TaskEnvironment("unit-bundle-leaf")


@leaf_env.task
async def leaf_task(x: int) -> int:
    return x + 1


@leaf_env.task
async def unused_leaf(x: int) -> int:
    return x
