"""`body_stamp`, first version. `caching_body_v2` defines the same task (same environment, name and interface)
with another body, as if this file had been edited between two runs."""

from __future__ import annotations

import uuid

import flyte_celery as flyte

env = flyte.TaskEnvironment("behaviour-caching-body")


@env.task(cache="auto")
async def body_stamp(x: int) -> str:
    return "v1:" + uuid.uuid4().hex
