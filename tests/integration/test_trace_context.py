"""A client and workers instrumented for tracing (a `before_task_publish` receiver adding `traceparent`, as
OpenTelemetry's Celery instrumentation does) run as usual: the message guard lets the trace context through, and it
travels with the root (published by kombu) and with every child (pushed by our attach script)."""

from __future__ import annotations

from typing import Any

import flyte_celery as flyte
from tests._workers import WorkerFactory, cluster_in_use
from tests.integration.programs import trace_context

CHILDREN = 3
RUN_DEADLINE_S = 30.0


def test_trace_context_travels_with_the_root_and_every_child(worker_factory: WorkerFactory, redis_client: Any) -> None:
    worker_factory.start(2, "--include", trace_context.__name__)
    with cluster_in_use(worker_factory):
        run = flyte.with_runcontext(mode="remote").run(trace_context.parent, CHILDREN)
        assert run.outputs(timeout=RUN_DEADLINE_S).o0 == sum(range(1, CHILDREN + 1))
    received = {key.decode(): value.decode() for key, value in redis_client.hgetall(trace_context.RECEIVED_KEY).items()}
    assert len(received) == 1 + CHILDREN, received  # the root and each child, each delivered once
    assert all(trace_context.TRACE_ID in value for value in received.values()), received
    assert not redis_client.keys("*dead*letter*")
