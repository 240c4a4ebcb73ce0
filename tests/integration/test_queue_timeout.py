"""`Timeout.max_queued_time` is enforced on the worker when the action finally starts."""

from __future__ import annotations

from typing import Any

import pytest

import flyte_celery as flyte
from flyte_celery.errors import MaxQueuedTimeExceededError
from tests._services import wait_until
from tests._workers import WorkerFactory
from tests.integration.programs import slow


def test_an_action_that_waited_too_long_in_the_queue_fails(worker_factory: WorkerFactory, redis_client: Any) -> None:
    worker_factory.start(concurrency=1)
    blocker = flyte.with_runcontext(mode="remote").run(slow.busy, 1.5)
    wait_until(lambda: redis_client.hget("test:executions", "busy"), 30, "the blocker to hold the only slot")
    late = flyte.with_runcontext(mode="remote").run(slow.impatient)
    assert late.wait(timeout=30) == flyte.ActionPhase.TIMED_OUT
    with pytest.raises(MaxQueuedTimeExceededError):
        late.outputs()
    assert blocker.wait(timeout=30) == flyte.ActionPhase.SUCCEEDED
