"""The ATTACH and COMPLETE Lua scripts against a real Redis: attach once, write once, notify every waiter."""

from __future__ import annotations

import time
from typing import Any

import pytest

from flyte_celery._celery.keys import ENQUEUED_TTL_S, RESULT_TTL_S, WAITERS_TTL_S, Keys, lease_member
from flyte_celery._celery.records import ATTACH, ATTACH_TTLS, COMPLETE, COMPLETE_TTL, notification

RUN, ACTION = "run-rec", "a0"
READ_DEADLINE_S = 5.0


@pytest.fixture
def keys() -> Keys:
    return Keys("unit-records:")


def attach(client: Any, keys: Keys, channel: str, action: str = ACTION) -> list[Any]:
    return list(
        client.eval(
            ATTACH,
            3,
            keys.result(RUN, action),
            keys.waiters(RUN, action),
            keys.enqueued(RUN, action),
            channel,
            *ATTACH_TTLS,
        )
    )


def complete(client: Any, keys: Keys, blob: bytes, action: str = ACTION) -> int:
    return int(
        client.eval(
            COMPLETE,
            4,
            keys.result(RUN, action),
            keys.waiters(RUN, action),
            keys.leases,
            keys.message(RUN, action),
            blob,
            COMPLETE_TTL,
            notification(RUN, action),
            lease_member(RUN, action),
        )
    )


def read_messages(pubsub: Any, count: int) -> list[tuple[bytes, bytes]]:
    """The next `count` published messages as (channel, data), failing after a deadline."""
    got: list[tuple[bytes, bytes]] = []
    end = time.monotonic() + READ_DEADLINE_S
    while len(got) < count:
        remaining = end - time.monotonic()
        assert remaining > 0, f"timed out waiting for {count} notifications; got {got!r}"
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=remaining)
        if message is not None:
            got.append((message["channel"], message["data"]))
    return got


def test_ttls_are_the_key_constants() -> None:
    assert ATTACH_TTLS == (WAITERS_TTL_S, ENQUEUED_TTL_S)
    assert COMPLETE_TTL == RESULT_TTL_S
    assert notification("r", "a") == "r:a" == lease_member("r", "a")


# --- ATTACH -----------------------------------------------------------------------------------------------------


def test_attach_asks_the_first_caller_only_to_publish(redis_client: Any, keys: Keys) -> None:
    assert attach(redis_client, keys, "chan-1") == [None, 1]
    assert attach(redis_client, keys, "chan-2") == [None, 0]
    assert attach(redis_client, keys, "chan-1") == [None, 0]
    assert redis_client.smembers(keys.waiters(RUN, ACTION)) == {b"chan-1", b"chan-2"}
    assert 0 < redis_client.ttl(keys.waiters(RUN, ACTION)) <= WAITERS_TTL_S
    assert 0 < redis_client.ttl(keys.enqueued(RUN, ACTION)) <= ENQUEUED_TTL_S


def test_attach_without_channel_registers_no_waiter(redis_client: Any, keys: Keys) -> None:
    assert attach(redis_client, keys, "") == [None, 1]
    assert not redis_client.exists(keys.waiters(RUN, ACTION))


def test_attach_returns_the_result_once_written(redis_client: Any, keys: Keys) -> None:
    assert attach(redis_client, keys, "chan-1") == [None, 1]
    assert complete(redis_client, keys, b"signed-outcome") == 1
    assert attach(redis_client, keys, "chan-2") == [b"signed-outcome", 0]


def test_attach_to_a_finished_action_that_was_never_enqueued_does_not_ask_to_publish(
    redis_client: Any, keys: Keys
) -> None:
    assert complete(redis_client, keys, b"done") == 1  # e.g. an aborted root recorded by the client
    assert attach(redis_client, keys, "chan-1") == [b"done", 0]
    assert not redis_client.exists(keys.enqueued(RUN, ACTION))


def test_actions_are_independent(redis_client: Any, keys: Keys) -> None:
    assert attach(redis_client, keys, "chan", action="a1") == [None, 1]
    assert attach(redis_client, keys, "chan", action="a2") == [None, 1]
    assert complete(redis_client, keys, b"one", action="a1") == 1
    assert attach(redis_client, keys, "chan", action="a2") == [None, 0]


# --- COMPLETE ---------------------------------------------------------------------------------------------------


def test_complete_writes_once(redis_client: Any, keys: Keys) -> None:
    assert complete(redis_client, keys, b"first") == 1
    assert complete(redis_client, keys, b"second") == 0
    assert redis_client.get(keys.result(RUN, ACTION)) == b"first"
    assert 0 < redis_client.ttl(keys.result(RUN, ACTION)) <= RESULT_TTL_S


def test_complete_notifies_every_registered_waiter(redis_client: Any, keys: Keys) -> None:
    channels = [keys.reply_channel(f"proc-{i}") for i in range(3)]
    pubsub = redis_client.pubsub()
    try:
        pubsub.subscribe(*channels, keys.reply_channel("not-waiting"))
        for channel in channels:
            attach(redis_client, keys, channel)
        assert complete(redis_client, keys, b"outcome") == 1
        got = read_messages(pubsub, len(channels))
        assert sorted(channel for channel, _ in got) == sorted(c.encode() for c in channels)
        assert {data for _, data in got} == {notification(RUN, ACTION).encode()}
        assert pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05) is None
    finally:
        pubsub.close()


def test_complete_drops_the_lease_and_stored_message_only_of_its_action(redis_client: Any, keys: Keys) -> None:
    redis_client.zadd(keys.leases, {lease_member(RUN, ACTION): 100.0, lease_member(RUN, "other"): 200.0})
    redis_client.set(keys.message(RUN, ACTION), "stored message")
    redis_client.set(keys.message(RUN, "other"), "other message")
    assert complete(redis_client, keys, b"outcome") == 1
    assert redis_client.zrange(keys.leases, 0, -1) == [lease_member(RUN, "other").encode()]
    assert not redis_client.exists(keys.message(RUN, ACTION))
    assert redis_client.get(keys.message(RUN, "other")) == b"other message"


def test_second_complete_still_cleans_up_and_keeps_the_result(redis_client: Any, keys: Keys) -> None:
    assert complete(redis_client, keys, b"first") == 1
    redis_client.zadd(keys.leases, {lease_member(RUN, ACTION): 100.0})  # e.g. a replay took the lease again
    redis_client.set(keys.message(RUN, ACTION), "replayed message")
    assert complete(redis_client, keys, b"replay") == 0
    assert redis_client.get(keys.result(RUN, ACTION)) == b"first"
    assert redis_client.zcard(keys.leases) == 0
    assert not redis_client.exists(keys.message(RUN, ACTION))


def test_complete_keeps_binary_outcomes_intact(redis_client: Any, keys: Keys) -> None:
    blob = bytes(range(256)) * 64
    assert complete(redis_client, keys, blob) == 1
    assert attach(redis_client, keys, "chan") == [blob, 0]
