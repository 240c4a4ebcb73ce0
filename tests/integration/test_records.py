"""The key layout and the ATTACH, START and COMPLETE Lua scripts against a real Redis: attach once, start only a run
that exists, write once, notify every waiter, and write nothing for a lost run."""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest
from redis.crc import key_slot

from flyte_celery._celery.keys import Keys, lease_member
from flyte_celery._celery.records import ATTACH, COMPLETE, START, Start, notification
from flyte_celery._config_model import RetentionSettings

RUN, ACTION = "run-rec", "a0"
PREFIX = "unit-records:"
RESULT_TTL_S = 600
RUN_TTL_S = 1200
READ_DEADLINE_S = 5.0
END_MARK = b"end-of-test-messages"
QUEUE_LIST = "unit-records-queue"


@pytest.fixture
def keys() -> Keys:
    # TTLs unlike the defaults, so a test can tell they come from the retention settings.
    return Keys(PREFIX, RetentionSettings(results_s=RESULT_TTL_S, runs_s=RUN_TTL_S))


@pytest.fixture
def run_record(redis_client: Any, keys: Keys) -> str:
    """The run's record, as a launcher writes it: without it, the run is lost."""
    redis_client.hset(keys.run(RUN), mapping={"root": "env.main", "mode": "remote"})
    redis_client.expire(keys.run(RUN), keys.run_ttl_s)
    return keys.run(RUN)


def attach(client: Any, keys: Keys, channel: str, action: str = ACTION, token: str | None = None) -> list[Any]:
    """ATTACH as one wait does it; `token` (unique per wait unless given) makes a retried call answer the same."""
    return list(
        client.eval(
            ATTACH,
            3,
            keys.result(RUN, action),
            keys.waiters(RUN, action),
            keys.enqueued(RUN, action),
            channel,
            keys.result_ttl_s,
            token if token is not None else secrets.token_hex(8),
        )
    )


def attach_pushing(
    client: Any, keys: Keys, message: bytes, *, republish: bool = False, token: str | None = None
) -> list[Any]:
    """ATTACH as the runtime sends it when the broker is our Redis: with the index entry and the message to push."""
    script_keys = [keys.result(RUN, ACTION), keys.waiters(RUN, ACTION), keys.enqueued(RUN, ACTION), keys.actions(RUN)]
    args = ["chan", keys.result_ttl_s, token or secrets.token_hex(8), int(republish), ACTION, "queued", RUN_TTL_S, 100]
    return list(client.eval(ATTACH, 5, *script_keys, QUEUE_LIST, *args, message))


def start(client: Any, keys: Keys, message: str = "", action: str = ACTION) -> Start:
    reply = client.eval(
        START,
        4,
        keys.run(RUN),
        keys.result(RUN, action),
        keys.aborted(RUN),
        keys.message(RUN, action),
        message,
        keys.result_ttl_s,
    )
    return Start(reply.decode())


def complete(client: Any, keys: Keys, blob: bytes, action: str = ACTION) -> int:
    return int(
        client.eval(
            COMPLETE,
            5,
            keys.run(RUN),
            keys.result(RUN, action),
            keys.waiters(RUN, action),
            keys.message(RUN, action),
            keys.enqueued(RUN, action),
            blob,
            keys.result_ttl_s,
            notification(RUN, action),
        )
    )


def snapshot(client: Any) -> dict[bytes, Any]:
    """Every key of the test's DB with its value, to show that a script wrote nothing."""
    values: dict[bytes, Any] = {}
    for key in client.scan_iter():
        kind = client.type(key)
        values[key] = client.smembers(key) if kind == b"set" else client.dump(key)
    return values


def published(client: Any, pubsub: Any, channel: str) -> list[tuple[bytes, bytes]]:
    """Everything published to `pubsub`'s channels so far, as (channel, data): read up to an end mark published now
    on `channel` (a subscriber gets messages in the order Redis ran the commands), failing after a deadline."""
    client.publish(channel, END_MARK)
    got: list[tuple[bytes, bytes]] = []
    end = time.monotonic() + READ_DEADLINE_S
    while True:
        remaining = end - time.monotonic()
        assert remaining > 0, f"timed out waiting for the end mark; got {got!r}"
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=remaining)
        if message is None:
            continue
        if message["data"] == END_MARK:
            return got
        got.append((message["channel"], message["data"]))


def subscribed(client: Any, *channels: str) -> Any:
    """A pubsub subscribed to `channels`, once Redis has confirmed every subscription."""
    pubsub = client.pubsub()
    pubsub.subscribe(*channels)
    confirmed = 0
    end = time.monotonic() + READ_DEADLINE_S
    while confirmed < len(channels):
        assert time.monotonic() < end, "timed out waiting for the subscriptions to be confirmed"
        message = pubsub.get_message(timeout=end - time.monotonic())
        if message is not None and message["type"] == "subscribe":
            confirmed += 1
    return pubsub


# --- key layout -------------------------------------------------------------------------------------------------


def test_keys_of_a_run_carry_its_hash_tag() -> None:
    keys = Keys("p:")
    assert keys.run("r1") == "p:{r1}:run"
    assert keys.result("r1", "a0") == "p:{r1}:result:a0"
    assert keys.waiters("r1", "a0") == "p:{r1}:waiters:a0"
    assert keys.enqueued("r1", "a0") == "p:{r1}:enqueued:a0"
    assert keys.message("r1", "a0") == "p:{r1}:message:a0"
    assert keys.aborted("r1") == "p:{r1}:aborted"


def test_every_key_a_script_touches_is_in_its_runs_cluster_slot() -> None:
    keys = Keys(PREFIX)
    for run in ("r1", "run-with:colon", "another-run", "odd}run", "odd{run"):
        run_keys = [keys.run(run), keys.aborted(run)]
        for action in ("a0", "abc123"):
            run_keys += [
                keys.result(run, action),
                keys.waiters(run, action),
                keys.enqueued(run, action),
                keys.message(run, action),
            ]
        assert len({key_slot(key.encode()) for key in run_keys}) == 1, run
    assert key_slot(keys.run("r1").encode()) == key_slot(b"r1")


def test_shared_keys_and_channels() -> None:
    keys = Keys("p:")
    assert keys.bundle("d1") == "p:bundle:d1"
    assert (keys.leases, keys.dead_letters, keys.signing_keys) == ("p:leases", "p:dead-letters", "p:signing-keys")
    assert (keys.abort_channel, keys.reply_channel("proc-1")) == ("p:abort", "p:reply:proc-1")
    assert notification("r", "a") == "r:a" == lease_member("r", "a")


def test_ttls_come_from_the_retention_settings() -> None:
    retention = RetentionSettings(results_s=61, runs_s=62, dead_letters=5, dead_letters_s=63)
    keys = Keys("p:", retention)
    assert (keys.result_ttl_s, keys.run_ttl_s, keys.dead_letters_max, keys.dead_letters_ttl_s) == (61, 62, 5, 63)
    defaults = Keys("p:")
    assert (defaults.result_ttl_s, defaults.run_ttl_s) == (RetentionSettings().results_s, RetentionSettings().runs_s)


# --- ATTACH -----------------------------------------------------------------------------------------------------


def test_attach_asks_the_first_caller_only_to_publish(redis_client: Any, keys: Keys) -> None:
    assert attach(redis_client, keys, "chan-1") == [None, 1]
    assert attach(redis_client, keys, "chan-2") == [None, 0]
    assert attach(redis_client, keys, "chan-1") == [None, 0]
    assert redis_client.smembers(keys.waiters(RUN, ACTION)) == {b"chan-1", b"chan-2"}
    assert 0 < redis_client.ttl(keys.waiters(RUN, ACTION)) <= RESULT_TTL_S
    assert 0 < redis_client.ttl(keys.enqueued(RUN, ACTION)) <= RESULT_TTL_S


def test_a_retried_attach_answers_as_the_first_time(redis_client: Any, keys: Keys) -> None:
    # The connection broke after Redis ran the script: the client runs it again, with the same token.
    assert attach(redis_client, keys, "chan-1", token="wait-1") == [None, 1]
    assert attach(redis_client, keys, "chan-1", token="wait-1") == [None, 1]
    assert attach(redis_client, keys, "chan-2", token="wait-2") == [None, 0]
    assert attach(redis_client, keys, "chan-1", token="wait-1") == [None, 1]


def test_attach_without_channel_registers_no_waiter(redis_client: Any, keys: Keys) -> None:
    assert attach(redis_client, keys, "") == [None, 1]
    assert not redis_client.exists(keys.waiters(RUN, ACTION))


def test_attach_returns_the_result_once_written(redis_client: Any, keys: Keys, run_record: str) -> None:
    assert attach(redis_client, keys, "chan-1") == [None, 1]
    assert complete(redis_client, keys, b"sealed-outcome") == 1
    assert attach(redis_client, keys, "chan-2") == [b"sealed-outcome", 0]


def test_attach_to_a_finished_action_that_was_never_enqueued_does_not_ask_to_publish(
    redis_client: Any, keys: Keys, run_record: str
) -> None:
    assert complete(redis_client, keys, b"done") == 1  # e.g. an aborted root recorded by the client
    assert attach(redis_client, keys, "chan-1") == [b"done", 0]
    assert not redis_client.exists(keys.enqueued(RUN, ACTION))


def test_actions_are_independent(redis_client: Any, keys: Keys, run_record: str) -> None:
    assert attach(redis_client, keys, "chan", action="a1") == [None, 1]
    assert attach(redis_client, keys, "chan", action="a2") == [None, 1]
    assert complete(redis_client, keys, b"one", action="a1") == 1
    assert attach(redis_client, keys, "chan", action="a2") == [None, 0]
    assert attach(redis_client, keys, "chan", action="a1") == [b"one", 0]


def test_the_attach_that_publishes_pushes_the_message_once(redis_client: Any, keys: Keys) -> None:
    assert attach_pushing(redis_client, keys, b"message-1") == [None, 1]
    assert attach_pushing(redis_client, keys, b"message-2") == [None, 0]  # published already: not again
    assert redis_client.lrange(QUEUE_LIST, 0, -1) == [b"message-1"]


def test_a_retried_pushing_attach_does_not_push_again(redis_client: Any, keys: Keys) -> None:
    # Redis ran the script, the reply was lost, the client runs it again with the same token: one message only.
    assert attach_pushing(redis_client, keys, b"message", token="wait-1") == [None, 1]
    assert attach_pushing(redis_client, keys, b"message", token="wait-1") == [None, 1]
    assert redis_client.llen(QUEUE_LIST) == 1


def test_a_replayed_parent_pushes_whenever_there_is_no_result(redis_client: Any, keys: Keys, run_record: str) -> None:
    assert attach_pushing(redis_client, keys, b"first") == [None, 1]
    assert attach_pushing(redis_client, keys, b"again", republish=True) == [None, 1]
    assert redis_client.lrange(QUEUE_LIST, 0, -1) == [b"again", b"first"]
    assert complete(redis_client, keys, b"done") == 1
    assert attach_pushing(redis_client, keys, b"late", republish=True) == [b"done", 0]
    assert redis_client.llen(QUEUE_LIST) == 2  # finished: nothing to publish


# --- START ------------------------------------------------------------------------------------------------------


def test_start_of_a_lost_run_writes_nothing(redis_client: Any, keys: Keys) -> None:
    redis_client.set(keys.result(RUN, "a1"), b"an outcome left behind")  # the run record alone is gone
    before = snapshot(redis_client)
    assert start(redis_client, keys, message='{"envelope": "..."}') is Start.LOST
    assert start(redis_client, keys, message='{"envelope": "..."}', action="a1") is Start.LOST
    assert start(redis_client, keys) is Start.LOST
    assert snapshot(redis_client) == before
    assert not redis_client.exists(keys.message(RUN, ACTION))


def test_start_of_a_finished_action_does_not_store_its_message(redis_client: Any, keys: Keys, run_record: str) -> None:
    assert complete(redis_client, keys, b"outcome") == 1
    redis_client.set(keys.aborted(RUN), "aborted after it finished")
    assert start(redis_client, keys, message="the message") is Start.FINISHED
    assert not redis_client.exists(keys.message(RUN, ACTION))


def test_start_of_an_action_of_an_aborted_run(redis_client: Any, keys: Keys, run_record: str) -> None:
    redis_client.set(keys.aborted(RUN), "the user aborted it")
    assert start(redis_client, keys, message="the message") is Start.ABORTED
    assert start(redis_client, keys) is Start.ABORTED
    assert start(redis_client, keys, action="a1") is Start.ABORTED


def test_start_stores_the_message_with_the_result_ttl(redis_client: Any, keys: Keys, run_record: str) -> None:
    assert start(redis_client, keys, message='{"run": "run-rec"}') is Start.START
    assert redis_client.get(keys.message(RUN, ACTION)) == b'{"run": "run-rec"}'
    assert 0 < redis_client.ttl(keys.message(RUN, ACTION)) <= RESULT_TTL_S
    assert not redis_client.exists(keys.message(RUN, "a1"))


def test_start_without_a_message_stores_none(redis_client: Any, keys: Keys, run_record: str) -> None:
    before = snapshot(redis_client)
    assert start(redis_client, keys) is Start.START
    assert snapshot(redis_client) == before


def test_start_of_another_action_is_not_finished_by_this_ones_result(
    redis_client: Any, keys: Keys, run_record: str
) -> None:
    assert complete(redis_client, keys, b"outcome") == 1
    assert start(redis_client, keys, action="a1") is Start.START


# --- COMPLETE ---------------------------------------------------------------------------------------------------


def test_complete_writes_once(redis_client: Any, keys: Keys, run_record: str) -> None:
    assert complete(redis_client, keys, b"first") == 1
    assert complete(redis_client, keys, b"second") == 0
    assert redis_client.get(keys.result(RUN, ACTION)) == b"first"
    assert 0 < redis_client.ttl(keys.result(RUN, ACTION)) <= RESULT_TTL_S


def test_complete_of_a_lost_run_writes_and_publishes_nothing(redis_client: Any, keys: Keys) -> None:
    channel = keys.reply_channel("proc-1")
    attach(redis_client, keys, channel)
    redis_client.set(keys.message(RUN, ACTION), "stored message")
    before = snapshot(redis_client)
    pubsub = subscribed(redis_client, channel)
    try:
        assert complete(redis_client, keys, b"outcome") == -1
        assert published(redis_client, pubsub, channel) == []
    finally:
        pubsub.close()
    assert snapshot(redis_client) == before
    assert not redis_client.exists(keys.result(RUN, ACTION))


def test_complete_notifies_every_registered_waiter(redis_client: Any, keys: Keys, run_record: str) -> None:
    channels = [keys.reply_channel(f"proc-{i}") for i in range(3)]
    pubsub = subscribed(redis_client, *channels, keys.reply_channel("not-waiting"))
    try:
        for channel in channels:
            attach(redis_client, keys, channel)
        assert complete(redis_client, keys, b"outcome") == 1
        got = published(redis_client, pubsub, channels[0])
        assert sorted(channel for channel, _ in got) == sorted(c.encode() for c in channels)
        assert {data for _, data in got} == {notification(RUN, ACTION).encode()}
    finally:
        pubsub.close()


def test_complete_drops_the_stored_message_only_of_its_action(redis_client: Any, keys: Keys, run_record: str) -> None:
    redis_client.set(keys.message(RUN, ACTION), "stored message")
    redis_client.set(keys.message(RUN, "other"), "other message")
    assert complete(redis_client, keys, b"outcome") == 1
    assert not redis_client.exists(keys.message(RUN, ACTION))
    assert redis_client.get(keys.message(RUN, "other")) == b"other message"


def test_second_complete_still_cleans_up_notifies_and_keeps_the_result(
    redis_client: Any, keys: Keys, run_record: str
) -> None:
    channel = keys.reply_channel("proc-late")
    assert complete(redis_client, keys, b"first") == 1
    redis_client.set(keys.message(RUN, ACTION), "replayed message")  # e.g. a replay started it again
    attach(redis_client, keys, channel)
    pubsub = subscribed(redis_client, channel)
    try:
        assert complete(redis_client, keys, b"replay") == 0
        assert published(redis_client, pubsub, channel) == [(channel.encode(), notification(RUN, ACTION).encode())]
    finally:
        pubsub.close()
    assert redis_client.get(keys.result(RUN, ACTION)) == b"first"
    assert not redis_client.exists(keys.message(RUN, ACTION))


def test_complete_leaves_only_the_result_of_its_action(redis_client: Any, keys: Keys, run_record: str) -> None:
    attach(redis_client, keys, keys.reply_channel("proc-1"))  # a waiter and the enqueued mark
    attach(redis_client, keys, keys.reply_channel("proc-2"), action="other")
    redis_client.set(keys.message(RUN, ACTION), "stored message")
    assert complete(redis_client, keys, b"outcome") == 1
    assert not redis_client.exists(keys.waiters(RUN, ACTION), keys.enqueued(RUN, ACTION), keys.message(RUN, ACTION))
    assert redis_client.exists(keys.waiters(RUN, "other"), keys.enqueued(RUN, "other")) == 2
    assert attach(redis_client, keys, keys.reply_channel("proc-3")) == [b"outcome", 0]  # a late waiter finds it


def test_complete_keeps_binary_outcomes_intact(redis_client: Any, keys: Keys, run_record: str) -> None:
    blob = bytes(range(256)) * 64
    assert complete(redis_client, keys, blob) == 1
    assert attach(redis_client, keys, "chan") == [blob, 0]
