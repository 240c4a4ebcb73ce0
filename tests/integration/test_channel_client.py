"""The worker's broker channel keeps its unacknowledged-message bookkeeping right with one shared client object per
connection pool (kombu's Redis transport, a real Redis)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from kombu import Connection, Consumer, Producer, Queue

from flyte_celery._celery.channel_client import share_channel_client

MESSAGES = 6
DRAIN_TIMEOUT_S = 5.0


@pytest.fixture
def connection(redis_url: str, redis_client: Any) -> Iterator[Any]:
    with Connection(redis_url) as conn:
        yield conn


def counting_clients(channel: Any) -> list[Any]:
    """Records every client object `channel` makes for its synchronous calls."""
    made: list[Any] = []
    make = channel._create_client

    def counted(*args: Any, **kwargs: Any) -> Any:
        client = make(*args, **kwargs)
        made.append(client)
        return client

    channel._create_client = counted
    return made


def consume_and_ack(connection: Any, channel: Any, redis_client: Any) -> None:
    queue = Queue(f"q-{secrets.token_hex(3)}")
    queue(channel).declare()
    producer = Producer(connection.channel())
    for i in range(MESSAGES):
        producer.publish({"i": i}, routing_key=queue.name, serializer="json")
    received: list[int] = []

    def on_message(body: Any, message: Any) -> None:
        assert redis_client.hexists("unacked", message.delivery_tag)  # recorded as unacknowledged on delivery
        received.append(body["i"])
        message.ack()
        assert not redis_client.hexists("unacked", message.delivery_tag)  # and forgotten on acknowledgement

    with Consumer(channel, queues=[queue], callbacks=[on_message], prefetch_count=1, no_ack=False):
        while len(received) < MESSAGES:
            connection.drain_events(timeout=DRAIN_TIMEOUT_S)
    assert sorted(received) == list(range(MESSAGES))
    assert redis_client.hlen("unacked") == 0
    assert redis_client.zcard("unacked_index") == 0


def test_kombu_alone_makes_a_client_per_bookkeeping_call(connection: Any, redis_client: Any) -> None:
    channel = connection.channel()
    made = counting_clients(channel)
    consume_and_ack(connection, channel, redis_client)
    assert len(made) >= 2 * MESSAGES  # what the shared client saves: one on delivery, one on acknowledgement


def test_a_shared_client_keeps_the_bookkeeping_with_one_client(connection: Any, redis_client: Any) -> None:
    channel = connection.channel()
    made = counting_clients(channel)
    assert share_channel_client(channel)
    consume_and_ack(connection, channel, redis_client)
    assert len(made) == 1


def test_a_new_pool_gets_a_new_client(connection: Any, redis_client: Any) -> None:
    channel = connection.channel()
    made = counting_clients(channel)
    assert share_channel_client(channel)
    with channel.conn_or_acquire() as first, channel.conn_or_acquire() as again:
        assert first is again
    channel._pool = None  # what kombu does when it drops the channel's connections
    with channel.conn_or_acquire() as after:
        assert after is not first
        assert after.connection_pool is channel.pool
    assert len(made) == 2


def test_a_given_client_is_used_as_it_is(connection: Any) -> None:
    channel = connection.channel()
    assert share_channel_client(channel)
    given = object()
    with channel.conn_or_acquire(given) as client:
        assert client is given


def test_another_transport_is_left_alone() -> None:
    with Connection("memory://") as conn:
        channel = conn.channel()
        assert not share_channel_client(channel)
        assert "conn_or_acquire" not in vars(channel)
