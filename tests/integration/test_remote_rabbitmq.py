"""RabbitMQ as the broker (Redis still holds results, records and the cache): remote and hybrid runs work as on
Redis. The server is started if it is down; an unreachable one fails the tests, it never skips them."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

import flyte_celery as flyte
from tests._workers import WorkerFactory, cluster_in_use
from tests.integration._rabbitmq import delete_queue, ensure_rabbitmq
from tests.integration.programs import remote_tasks, trees

RUN_DEADLINE_S = 30.0


@pytest.fixture
def rabbit_factory(
    redis_url: str, redis_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerFactory]:
    """Like `worker_factory`, with the broker on RabbitMQ: workers and this process use AMQP and the test Redis DB."""
    broker = ensure_rabbitmq()
    queue = f"test-amqp-{secrets.token_hex(4)}"
    try:
        with cluster_in_use(WorkerFactory(broker, redis_url, queue, tmp_path_factory.mktemp(queue))) as factory:
            yield factory
    finally:
        delete_queue(broker, queue)


def test_a_deep_tree_runs_remotely_with_a_rabbitmq_broker(rabbit_factory: WorkerFactory, redis_client: Any) -> None:
    worker = rabbit_factory.start(concurrency=1)
    assert "amqp://guest:**@127.0.0.1:5672//" in worker.log()  # the worker is really on RabbitMQ
    run = flyte.with_runcontext(mode="remote").run(trees.tree, 3, 2)
    assert run.wait(timeout=RUN_DEADLINE_S) == flyte.ActionPhase.SUCCEEDED, worker.log()[-3000:]
    assert run.outputs().o0 == 2**3
    assert not redis_client.exists(rabbit_factory.queue)  # nothing went through a Redis broker list
    assert flyte.Run.get(run.name).outputs().o0 == 8


def test_a_hybrid_run_with_a_rabbitmq_broker(rabbit_factory: WorkerFactory) -> None:
    worker = rabbit_factory.start(concurrency=1)
    run = flyte.with_runcontext(mode="hybrid").run(trees.tree, 3, 2)
    assert run.phase == flyte.ActionPhase.SUCCEEDED  # the root ran here: `.run()` returned when it was done
    assert run.outputs().o0 == 2**3
    failing = flyte.with_runcontext(mode="remote").run(remote_tasks.parent_of_failing, 1)
    assert failing.wait(timeout=RUN_DEADLINE_S) == flyte.ActionPhase.FAILED, worker.log()[-3000:]
