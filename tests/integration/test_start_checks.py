"""`StartChecks` against a real Redis: one round trip decides start, duplicate, finished, aborted or lost, takes the
lease only for an action that starts, and survives Redis losing its script or the check's connection."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from flyte_celery._celery.keys import LEASE_TTL_S, Keys, lease_member
from flyte_celery._celery.records import Start
from flyte_celery._celery.start_checks import StartChecks

RUN, ACTION = "run-start-checks", "a1"
PREFIX = "test-start-checks:"
MESSAGE = '{"args": ["stored"], "headers": {}}'


@pytest.fixture
def keys() -> Keys:
    return Keys(PREFIX)


@pytest.fixture
def checks(redis_url: str, redis_client: Any, keys: Keys) -> Iterator[StartChecks]:
    redis_client.hset(keys.run(RUN), mapping={"root": "env.main", "mode": "remote"})
    checks = StartChecks(redis_url, keys)
    yield checks
    checks.close()


def lease_expiry(client: Any, keys: Keys) -> float | None:
    score = client.zscore(keys.leases, lease_member(RUN, ACTION))
    return None if score is None else float(score)


def test_a_fresh_action_starts_with_its_lease_taken_and_its_message_stored(
    checks: StartChecks, redis_client: Any, keys: Keys
) -> None:
    before = time.time()
    assert checks.check(RUN, ACTION, MESSAGE) is Start.START
    expiry = lease_expiry(redis_client, keys)
    assert expiry is not None
    assert before + LEASE_TTL_S <= expiry <= time.time() + LEASE_TTL_S
    assert redis_client.get(keys.message(RUN, ACTION)) == MESSAGE.encode()


def test_a_second_delivery_while_the_lease_is_live_is_a_duplicate(
    checks: StartChecks, redis_client: Any, keys: Keys
) -> None:
    assert checks.check(RUN, ACTION, MESSAGE) is Start.START
    expiry = lease_expiry(redis_client, keys)
    assert checks.check(RUN, ACTION, MESSAGE) is Start.DUPLICATE
    assert lease_expiry(redis_client, keys) == expiry  # the holder's lease is left as it was


def test_an_expired_lease_is_taken_over(checks: StartChecks, redis_client: Any, keys: Keys) -> None:
    redis_client.zadd(keys.leases, {lease_member(RUN, ACTION): time.time() - 1})
    assert checks.check(RUN, ACTION, MESSAGE) is Start.START
    expiry = lease_expiry(redis_client, keys)
    assert expiry is not None
    assert expiry > time.time() + LEASE_TTL_S / 2


@pytest.mark.parametrize(
    ("prepare", "expected"),
    [
        (lambda client, keys: client.set(keys.result(RUN, ACTION), b"outcome"), Start.FINISHED),
        (lambda client, keys: client.set(keys.aborted(RUN), b"stop"), Start.ABORTED),
        (lambda client, keys: client.delete(keys.run(RUN)), Start.LOST),
    ],
    ids=["finished", "aborted", "lost"],
)
def test_an_action_that_does_not_start_leaves_no_lease(
    checks: StartChecks, redis_client: Any, keys: Keys, prepare: Any, expected: Start
) -> None:
    prepare(redis_client, keys)
    assert checks.check(RUN, ACTION, MESSAGE) is expected
    assert lease_expiry(redis_client, keys) is None


def test_a_script_lost_by_redis_is_loaded_again_without_a_stray_lease(
    checks: StartChecks, redis_client: Any, keys: Keys
) -> None:
    assert checks.check(RUN, "warm-up", MESSAGE) is Start.START
    redis_client.script_flush()
    assert checks.check(RUN, ACTION, MESSAGE) is Start.START  # not DUPLICATE: the first try's lease was undone
    assert lease_expiry(redis_client, keys) is not None


def test_a_killed_connection_is_replaced_and_the_check_answers(
    checks: StartChecks, redis_client: Any, keys: Keys
) -> None:
    assert checks.check(RUN, "warm-up", MESSAGE) is Start.START
    own_id = redis_client.client_id()
    killed = sum(
        redis_client.client_kill_filter(_id=client["id"])
        for client in redis_client.client_list()
        if int(client["id"]) != own_id and client.get("db") == str(redis_client.get_connection_kwargs().get("db", 0))
    )
    assert killed >= 1
    assert checks.check(RUN, ACTION, MESSAGE) is Start.START
    assert lease_expiry(redis_client, keys) is not None


def test_a_retried_attempt_knows_the_lease_it_took_itself(checks: StartChecks, redis_client: Any, keys: Keys) -> None:
    # What a retry sends after its connection broke once Redis had run the first attempt: the same commands.
    lease_until = time.time() + LEASE_TTL_S
    assert checks._check(RUN, ACTION, MESSAGE, lease_until) is Start.START
    assert checks._check(RUN, ACTION, MESSAGE, lease_until) is Start.START  # not a duplicate of itself
    assert checks._check(RUN, ACTION, MESSAGE, lease_until + 0.5) is Start.DUPLICATE  # another delivery's check
    assert lease_expiry(redis_client, keys) == lease_until


def test_a_retried_attempt_that_does_not_start_drops_the_lease_it_took(
    checks: StartChecks, redis_client: Any, keys: Keys
) -> None:
    lease_until = time.time() + LEASE_TTL_S
    assert checks._check(RUN, ACTION, MESSAGE, lease_until) is Start.START
    redis_client.set(keys.aborted(RUN), b"stop")  # the run was aborted between the attempt and its retry
    assert checks._check(RUN, ACTION, MESSAGE, lease_until) is Start.ABORTED
    assert lease_expiry(redis_client, keys) is None
