"""The sealed cache over the real SQLite store: an entry is used only where, by whom and while it was written for;
everything else is a miss, never an error, also in an action's serialized cache flow."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import cloudpickle
import pytest

import flyte_celery as flyte
from flyte_celery._action_call import prepare_root_call
from flyte_celery._cache.sealed import CACHE_PURPOSE, WRITTEN_AT, SealedCache
from flyte_celery._cache.sqlite_store import SQLiteCacheStore
from flyte_celery._controllers.local import LocalController
from flyte_celery._execution import execute_action
from flyte_celery._run_spec import RunSpec
from flyte_celery._signing import SEAL_HEADER_BYTES, KeyRing
from flyte_celery._values import dumps_value

KEYS = KeyRing(b"unit-cache-key")
KEY_A, KEY_B = "g:cache-key-a", "g:cache-key-b"
PAYLOAD = b"\x80\x05pickled output\x00\xff"
HOUR_S = 3600.0
T = TypeVar("T")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteCacheStore]:
    store = SQLiteCacheStore(tmp_path / "cache.db")
    yield store
    asyncio.run(store.close())


@pytest.fixture
def cache(store: SQLiteCacheStore) -> SealedCache:
    return SealedCache(store, KEYS)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def entry(payload: bytes, key: str, written_at: float, keys: KeyRing = KEYS) -> bytes:
    """A sealed entry as `SealedCache.put` writes it, with a write time of our choosing."""
    return keys.seal(WRITTEN_AT.pack(written_at) + payload, CACHE_PURPOSE, key)


def test_round_trip(cache: SealedCache, store: SQLiteCacheStore) -> None:
    assert run(cache.put(KEY_A, PAYLOAD)) is True
    assert run(cache.get(KEY_A)) == PAYLOAD
    assert run(cache.get(KEY_B)) is None
    stored = run(store.get(KEY_A))
    assert stored is not None
    assert stored != PAYLOAD  # the store only sees the sealed entry
    assert stored.endswith(PAYLOAD)


def test_empty_payload_round_trips(cache: SealedCache) -> None:
    assert run(cache.put(KEY_A, b"")) is True
    assert run(cache.get(KEY_A)) == b""


def test_last_put_wins(cache: SealedCache) -> None:
    run(cache.put(KEY_A, b"first"))
    run(cache.put(KEY_A, b"second"))
    assert run(cache.get(KEY_A)) == b"second"


def test_an_entry_copied_to_another_key_is_a_miss(
    cache: SealedCache, store: SQLiteCacheStore, system_log: pytest.LogCaptureFixture
) -> None:
    run(cache.put(KEY_A, PAYLOAD))
    copied = run(store.get(KEY_A))
    assert copied is not None
    run(store.put(KEY_B, copied))
    assert run(cache.get(KEY_B)) is None
    assert run(cache.get(KEY_A)) == PAYLOAD
    assert any(KEY_B in r.getMessage() and "failed authentication" in r.getMessage() for r in system_log.records)


def test_an_entry_sealed_with_another_key_is_a_miss(store: SQLiteCacheStore) -> None:
    other = KeyRing(b"someone else's key")
    run(SealedCache(store, other).put(KEY_A, PAYLOAD))
    assert run(SealedCache(store, KEYS).get(KEY_A)) is None
    # A ring that still accepts that key (a rotation) reads it.
    assert run(SealedCache(store, KeyRing(KEYS.current, [other.current])).get(KEY_A)) == PAYLOAD


@pytest.mark.parametrize(
    "stored",
    [
        b"garbage",
        b"",
        cloudpickle.dumps("an unsealed pickle of a plausible output"),
        PAYLOAD,
        KEYS.seal(b"", CACHE_PURPOSE, KEY_A)[:SEAL_HEADER_BYTES] + b"x",
    ],
    ids=["garbage", "empty", "unsealed-pickle", "raw-payload", "sealed-header-of-another-entry"],
)
def test_garbage_is_a_miss(cache: SealedCache, store: SQLiteCacheStore, stored: bytes) -> None:
    run(store.put(KEY_A, stored))
    assert run(cache.get(KEY_A)) is None
    assert run(cache.get(KEY_A, timedelta(days=1))) is None


def test_an_authentic_entry_too_short_for_its_write_time_is_a_miss(cache: SealedCache, store: SQLiteCacheStore) -> None:
    run(store.put(KEY_A, KEYS.seal(b"\x00" * (WRITTEN_AT.size - 1), CACHE_PURPOSE, KEY_A)))
    assert run(cache.get(KEY_A)) is None


def test_an_entry_older_than_max_age_is_a_miss(cache: SealedCache, store: SQLiteCacheStore) -> None:
    run(store.put(KEY_A, entry(PAYLOAD, KEY_A, time.time() - HOUR_S)))
    assert run(cache.get(KEY_A, timedelta(minutes=30))) is None
    assert run(cache.get(KEY_A, timedelta(hours=2))) == PAYLOAD
    assert run(cache.get(KEY_A)) == PAYLOAD  # no max_age: any age


def test_a_fresh_entry_passes_max_age(cache: SealedCache) -> None:
    run(cache.put(KEY_A, PAYLOAD))
    assert run(cache.get(KEY_A, timedelta(minutes=1))) == PAYLOAD


def test_an_entry_cannot_be_made_younger(cache: SealedCache, store: SQLiteCacheStore) -> None:
    old = entry(PAYLOAD, KEY_A, time.time() - HOUR_S)
    start = SEAL_HEADER_BYTES
    younger = old[:start] + WRITTEN_AT.pack(time.time()) + old[start + WRITTEN_AT.size :]
    assert len(younger) == len(old)
    assert younger != old
    run(store.put(KEY_A, younger))
    assert run(cache.get(KEY_A, timedelta(minutes=30))) is None
    assert run(cache.get(KEY_A)) is None


def test_a_payload_over_the_entry_cap_is_not_stored(
    store: SQLiteCacheStore, system_log: pytest.LogCaptureFixture
) -> None:
    capped = SealedCache(store, KEYS, max_entry_bytes=10)
    assert run(capped.put(KEY_A, b"x" * 11)) is False
    assert run(store.get(KEY_A)) is None
    assert run(capped.get(KEY_A)) is None
    assert any(KEY_A in r.getMessage() and "11 bytes" in r.getMessage() for r in system_log.records)
    assert run(capped.put(KEY_B, b"x" * 10)) is True  # at the cap is fine
    assert run(capped.get(KEY_B)) == b"x" * 10


def test_a_payload_over_the_cap_leaves_the_previous_entry_alone(store: SQLiteCacheStore) -> None:
    capped = SealedCache(store, KEYS, max_entry_bytes=10)
    run(capped.put(KEY_A, b"small"))
    assert run(capped.put(KEY_A, b"x" * 11)) is False
    assert run(capped.get(KEY_A)) == b"small"


def test_reservations_are_the_stores(cache: SealedCache) -> None:
    assert run(cache.reserve(KEY_A, "owner-1", 60.0)) is True
    assert run(cache.reserve(KEY_A, "owner-2", 60.0)) is False
    run(cache.release(KEY_A, "owner-1"))
    assert run(cache.reserve(KEY_A, "owner-2", 60.0)) is True


def test_wait_for_opens_what_it_finds(cache: SealedCache, store: SQLiteCacheStore) -> None:
    run(cache.put(KEY_A, PAYLOAD))
    assert run(cache.wait_for(KEY_A, 0.0)) == PAYLOAD
    copied = run(store.get(KEY_A))
    assert copied is not None
    run(store.put(KEY_B, copied))  # copied: refused here too
    assert run(cache.wait_for(KEY_B, 0.0)) is None


def test_repr_does_not_show_the_keys(cache: SealedCache) -> None:
    assert "unit-cache-key" not in repr(cache)


# --- in an action's cache flow ------------------------------------------------------------------------------------

env = flyte.TaskEnvironment("unit-sealed-cache")
EXECUTED: list[int] = []


@env.task(cache=flyte.Cache(behavior="auto", serialize=True, max_age=timedelta(minutes=30)))
async def computed(x: int) -> str:
    EXECUTED.append(x)
    return "fresh"


def test_a_serialized_wait_never_returns_an_entry_older_than_max_age(store: SQLiteCacheStore) -> None:
    # An entry older than the task's max_age is a miss for `get`; while another process holds the key's
    # reservation, the wait must not hand that same stale entry back (`wait_for` takes no max_age).
    cache = SealedCache(store, KEYS)
    spec = RunSpec(name="run-stale", mode="local")
    call = prepare_root_call(spec, computed, (1,), {}, "a0")
    key = call.cache_key
    assert key is not None

    async def scenario() -> object:
        await store.put(key, entry(dumps_value("stale", what="output"), key, time.time() - HOUR_S))
        assert await cache.get(key, timedelta(minutes=30)) is None
        assert await cache.reserve(key, "another-run/a0", 0.5)  # the other process gives up after 0.5 s
        return await execute_action(call, spec, LocalController(spec, cache, asyncio.get_running_loop()), cache)

    assert run(scenario()) == "fresh"
    assert EXECUTED.count(1) == 1


def test_a_serialized_wait_does_not_spin_on_an_entry_it_refuses(
    store: SQLiteCacheStore, system_log: pytest.LogCaptureFixture
) -> None:
    # After a key rotation, the entry under a key is sealed with a key this process no longer accepts. While another
    # process holds the reservation, the wait must wait for it, not re-read and refuse the same entry in a loop.
    cache = SealedCache(store, KEYS)
    spec = RunSpec(name="run-rotated", mode="local")
    call = prepare_root_call(spec, computed, (2,), {}, "a0")
    key = call.cache_key
    assert key is not None

    async def scenario() -> object:
        await SealedCache(store, KeyRing(b"a retired key")).put(key, dumps_value("old", what="output"))
        assert await cache.reserve(key, "another-run/a0", 0.5)  # the other process gives up after 0.5 s
        return await execute_action(call, spec, LocalController(spec, cache, asyncio.get_running_loop()), cache)

    assert run(scenario()) == "fresh"
    assert EXECUTED.count(2) == 1
    refusals = [r for r in system_log.records if r.getMessage().startswith(f"ignoring cache entry {key}")]
    assert 1 <= len(refusals) <= 3, f"the entry was read and refused {len(refusals)} times"
