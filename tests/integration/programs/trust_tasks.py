"""Programs for the trust tests: tasks that count their executions in Redis (`test:executions`, on the Redis of
`FLYTE_CELERY_REDIS_URL`), so a test can tell a replayed or forged message that ran from one that did not."""

from __future__ import annotations

import flyte_celery as flyte
from tests.integration.programs._executions import count, executions

env = flyte.TaskEnvironment("trust_tasks")
__all__ = ["cached_counted", "counted", "executions"]


@env.task
async def counted(name: str, x: int) -> int:
    count(name)
    return 3 * x


@env.task(cache="auto")
async def cached_counted(name: str, x: int) -> int:
    count(name)
    return 3 * x
