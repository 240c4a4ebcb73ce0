"""Trace context as OpenTelemetry's Celery instrumentation handles it: a `before_task_publish` receiver puts a
`traceparent` header on every message published, and a `task_prerun` receiver records what each delivered message
carried (in `RECEIVED_KEY` on the cluster's Redis). Imported by the test's client, and by its workers through
`celery worker --include`, as instrumentation is set up in both."""

from __future__ import annotations

import asyncio
from typing import Any

from celery.signals import before_task_publish, task_prerun

import flyte_celery as flyte
from tests.integration.programs._executions import cluster_redis

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
RECEIVED_KEY = "test:traceparent"

env = flyte.TaskEnvironment("trace_context")


@before_task_publish.connect(weak=False)
def add_trace_context(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None:
        headers["traceparent"] = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@task_prerun.connect(weak=False)
def record_trace_context(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    received = getattr(getattr(task, "request", None), "traceparent", None)
    client = cluster_redis()
    try:
        client.hset(RECEIVED_KEY, str(task_id), str(received))
    finally:
        client.close()


@env.task
async def child(n: int) -> int:
    return n + 1


@env.task
async def parent(n: int) -> int:
    values = await asyncio.gather(*(child(i) for i in range(n)))
    return sum(values)
