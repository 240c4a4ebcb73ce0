"""Action messages pushed by our attach script are the ones kombu would publish, and a broker elsewhere than the
records' Redis database still gets every message through kombu."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery.signals import after_task_publish, before_task_publish

import flyte_celery as flyte
from flyte_celery._celery.app import make_app
from flyte_celery._celery.direct_publish import DirectMessages
from flyte_celery._celery.envelope import ActionMessage, Envelope, RunContextMessage
from flyte_celery._celery.publisher import ENTRY_TASK, Publication, send
from flyte_celery._config_model import Settings
from flyte_celery._signing import KeyRing
from tests._services import claim_redis_db, redis_base_url, release_redis_db
from tests._workers import WorkerFactory, cluster_in_use
from tests.integration.programs import trees

RING = KeyRing(b"integration-direct-publish-key")
RUN_DEADLINE_S = 30.0


def publication(queue: str) -> Publication:
    envelope = Envelope(
        run=RunContextMessage(name="r-direct", project="p", labels={"team": "ml"}, env_vars={"A": "1"}),
        action=ActionMessage(name="a7", parent="a0", task="env.child", bundle="b" * 32, queue=queue, group="g1"),
    )
    return Publication(envelope, b"\x80\x05inputs\x00\xff", "(n=21)")


def without_delivery_tag(raw: bytes) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(raw)
    tag = message["properties"].pop("delivery_tag")
    assert isinstance(tag, str)
    assert tag  # each message has its own; kombu acknowledges by it
    return message


def test_a_direct_message_is_the_one_kombu_publishes(redis_url: str, redis_client: Any) -> None:
    app = make_app(Settings.model_validate({"broker": {"url": redis_url}}))
    queue = f"q-{secrets.token_hex(3)}"
    send(app, RING, publication(queue))  # through Celery and kombu
    (published,) = redis_client.lrange(queue, 0, -1)
    ours = DirectMessages(app, RING).encode(publication(queue)).raw
    assert without_delivery_tag(ours) == without_delivery_tag(published)


def test_publish_signal_receivers_see_a_direct_message_as_they_see_kombu_s(redis_url: str, redis_client: Any) -> None:
    """Tracing instrumentation adds its headers in `before_task_publish`; they travel either way, and
    `after_task_publish` hears of both."""
    app = make_app(Settings.model_validate({"broker": {"url": redis_url}}))
    queue = f"q-{secrets.token_hex(3)}"
    heard: list[tuple[str, str, str]] = []

    def add_trace_context(sender: str, headers: dict[str, Any], routing_key: str, **_: Any) -> None:
        headers["traceparent"] = f"00-{'1' * 32}-{'2' * 16}-01"
        heard.append(("before", sender, routing_key))

    def published(sender: str, headers: dict[str, Any], routing_key: str, **_: Any) -> None:
        heard.append(("after", sender, headers["traceparent"][:4]))

    before_task_publish.connect(add_trace_context)
    after_task_publish.connect(published)
    try:
        send(app, RING, publication(queue))
        (through_kombu,) = redis_client.lrange(queue, 0, -1)
        direct = DirectMessages(app, RING).encode(publication(queue))
        DirectMessages.pushed(direct)
    finally:
        before_task_publish.disconnect(add_trace_context)
        after_task_publish.disconnect(published)
    assert without_delivery_tag(direct.raw) == without_delivery_tag(through_kombu)
    assert json.loads(direct.raw)["headers"]["traceparent"].startswith("00-111")
    assert heard == [("before", ENTRY_TASK, queue), ("after", ENTRY_TASK, "00-1")] * 2


@pytest.fixture
def split_factory(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WorkerFactory, str]]:
    """Workers whose broker is another Redis database than their records."""
    base = redis_base_url()
    db = claim_redis_db(base)
    broker = f"{base}/{db}"
    redis.Redis.from_url(broker).flushdb()
    queue = f"test-split-{secrets.token_hex(4)}"
    try:
        with cluster_in_use(WorkerFactory(broker, redis_url, queue, tmp_path_factory.mktemp(queue))) as factory:
            yield factory, broker
    finally:
        redis.Redis.from_url(broker).flushdb()
        release_redis_db(base, db)


def test_a_broker_on_another_redis_database_gets_its_messages_from_kombu(
    split_factory: tuple[WorkerFactory, str], redis_client: Any
) -> None:
    factory, broker = split_factory
    worker = factory.start(concurrency=2)
    run = flyte.with_runcontext(mode="remote").run(trees.tree, 3, 2)
    assert run.wait(timeout=RUN_DEADLINE_S) == flyte.ActionPhase.SUCCEEDED, worker.log()[-3000:]
    assert run.outputs().o0 == 2**3
    assert len(run.actions()) == 1 + 2 + 4 + 8  # every child was published and ran
    assert redis.Redis.from_url(broker).exists(f"_kombu.binding.{factory.queue}")  # kombu declared the queue
    assert not redis_client.exists(factory.queue)  # no message went to the records' database
