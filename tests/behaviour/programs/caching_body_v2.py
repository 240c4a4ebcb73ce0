"""`body_stamp`, second version: same environment, name and interface as in `caching_body_v1`, another body."""

from __future__ import annotations

import uuid

import flyte_celery as flyte

env = flyte.TaskEnvironment("behaviour-caching-body")


@env.task(cache="auto")
async def body_stamp(x: int) -> str:
    return "v2:" + uuid.uuid4().hex
