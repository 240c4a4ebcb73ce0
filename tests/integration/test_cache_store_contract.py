"""One contract suite that every `CacheStore` passes: SQLite (local mode) and Redis (Celery modes)."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from flyte_celery._cache.sqlite_store import SQLiteCacheStore
from flyte_celery._cache.store import CacheStore

StoreFactory = Callable[[], CacheStore]
DEADLINE_S = 10.0
PROCESS_WRITES = 500


@pytest.fixture(params=["sqlite", "redis"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Makes stores that share one backing database (a file, or a Redis DB and prefix) within a test."""
    if request.param == "sqlite":
        path = tmp_path / "nested" / "dirs" / "cache.db"
        return lambda: SQLiteCacheStore(path)
    from flyte_celery._cache.redis_store import RedisCacheStore

    url: str = request.getfixturevalue("redis_url")
    prefix = f"test-{uuid.uuid4().hex}:"
    return lambda: RedisCacheStore(url, prefix=prefix)


def run(new_store: StoreFactory, body: Callable[..., Awaitable[None]], count: int = 1) -> None:
    """Run `body(*stores)` on a fresh event loop with `count` store instances, closing them afterwards."""

    async def main() -> None:
        stores = [new_store() for _ in range(count)]
        try:
            await body(*stores)
        finally:
            for store in stores:
                await store.close()

    asyncio.run(main())


async def poll(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {DEADLINE_S}s waiting for {what}; last seen: {last!r}")


def test_store_satisfies_protocol(new_store: StoreFactory) -> None:
    assert isinstance(new_store(), CacheStore)


def test_get_put_overwrite(new_store: StoreFactory) -> None:
    async def body(store: CacheStore) -> None:
        assert await store.get("k") is None
        await store.put("k", b"first")
        assert await store.get("k") == b"first"
        await store.put("k", b"\x00second\xff")
        assert await store.get("k") == b"\x00second\xff"
        await store.put("empty", b"")
        assert await store.get("empty") == b""
        assert await store.get("other") is None

    run(new_store, body)


def test_values_persist_across_store_instances(new_store: StoreFactory) -> None:
    async def write(store: CacheStore) -> None:
        await store.put("persisted", b"value")

    async def read(store: CacheStore) -> None:
        assert await store.get("persisted") == b"value"

    run(new_store, write)
    run(new_store, read)


def test_reservations_are_exclusive(new_store: StoreFactory) -> None:
    async def body(store: CacheStore, other: CacheStore) -> None:
        assert await store.reserve("k", "alice", 30)
        assert not await other.reserve("k", "bob", 30)
        assert await store.reserve("k", "alice", 30), "re-reserving by the holder succeeds"
        await other.release("k", "bob")
        assert not await other.reserve("k", "bob", 30), "a non-owner's release leaves the reservation"
        assert await other.reserve("unrelated", "bob", 30)
        await store.release("k", "alice")
        assert await other.reserve("k", "bob", 30)
        assert not await store.reserve("k", "alice", 30)

    run(new_store, body, count=2)


def test_reservation_expires(new_store: StoreFactory) -> None:
    async def body(store: CacheStore) -> None:
        assert await store.reserve("k", "crashed", 0.3)
        assert not await store.reserve("k", "bob", 30)
        assert await poll(lambda: store.reserve("k", "bob", 30), "the expired reservation to be taken over")
        assert not await store.reserve("k", "crashed", 30)

    run(new_store, body)


def test_rereserving_refreshes_the_ttl(new_store: StoreFactory) -> None:
    async def body(store: CacheStore) -> None:
        assert await store.reserve("k", "alice", 0.3)
        assert await store.reserve("k", "alice", 60)
        start = time.monotonic()
        # After the first TTL has surely run out, the refreshed reservation still excludes bob.
        while time.monotonic() - start < 0.6:
            assert not await store.reserve("k", "bob", 30)
            await asyncio.sleep(0.05)

    run(new_store, body)


def test_wait_for_is_woken_by_a_put_from_another_store(new_store: StoreFactory) -> None:
    async def body(holder: CacheStore, waiter_store: CacheStore) -> None:
        assert await holder.reserve("k", "alice", 30)
        waiter = asyncio.create_task(waiter_store.wait_for("k", DEADLINE_S))
        done, _ = await asyncio.wait({waiter}, timeout=0.2)
        assert not done, "wait_for returned while the reservation was held and no value existed"
        started = time.monotonic()
        await holder.put("k", b"result")
        assert await asyncio.wait_for(waiter, DEADLINE_S) == b"result"
        assert time.monotonic() - started < DEADLINE_S / 2
        await holder.release("k", "alice")

    run(new_store, body, count=2)


def test_wait_for_returns_an_existing_value_at_once(new_store: StoreFactory) -> None:
    async def body(store: CacheStore) -> None:
        await store.put("k", b"ready")
        assert await store.reserve("k", "alice", 30)
        assert await asyncio.wait_for(store.wait_for("k", 60), DEADLINE_S) == b"ready"

    run(new_store, body)


def test_wait_for_without_reservation_returns_none(new_store: StoreFactory) -> None:
    async def body(store: CacheStore) -> None:
        assert await asyncio.wait_for(store.wait_for("nobody", 60), DEADLINE_S) is None

    run(new_store, body)


def test_wait_for_times_out(new_store: StoreFactory) -> None:
    async def body(store: CacheStore) -> None:
        assert await store.reserve("k", "alice", 30)
        started = time.monotonic()
        assert await store.wait_for("k", 0.3) is None
        assert time.monotonic() - started >= 0.25

    run(new_store, body)


def test_wait_for_returns_none_when_holder_releases_without_writing(new_store: StoreFactory) -> None:
    async def body(holder: CacheStore, waiter_store: CacheStore) -> None:
        assert await holder.reserve("k", "alice", 30)
        waiter = asyncio.create_task(waiter_store.wait_for("k", 60))
        done, _ = await asyncio.wait({waiter}, timeout=0.2)
        assert not done
        await holder.release("k", "alice")
        assert await asyncio.wait_for(waiter, DEADLINE_S) is None
        assert await holder.get("k") is None

    run(new_store, body, count=2)


def test_wait_for_returns_when_the_reservation_expires(new_store: StoreFactory) -> None:
    async def body(store: CacheStore) -> None:
        assert await store.reserve("k", "crashed", 0.3)
        assert await asyncio.wait_for(store.wait_for("k", 60), DEADLINE_S) is None

    run(new_store, body)


def test_concurrent_waiters_all_get_the_value(new_store: StoreFactory) -> None:
    async def body(holder: CacheStore, waiter_store: CacheStore) -> None:
        assert await holder.reserve("k", "alice", 30)
        waiters = [asyncio.create_task(waiter_store.wait_for("k", 60)) for _ in range(5)]
        await holder.put("k", b"shared")
        await holder.release("k", "alice")
        results = await asyncio.wait_for(asyncio.gather(*waiters), DEADLINE_S)
        assert results == [b"shared"] * 5

    run(new_store, body, count=2)


# --- SQLite across processes ------------------------------------------------------------------------------------


def _hammer(path: str, worker: str, start: Any, results: Any) -> None:
    """Child process: meet the other at the barrier, then write and reserve against the shared file."""

    async def main() -> tuple[str, tuple[list[str], float, float]]:
        store = SQLiteCacheStore(path)
        won: list[str] = []
        began = time.time()
        try:
            for i in range(PROCESS_WRITES):
                await store.put(f"{worker}-{i}", f"{worker}:{i}".encode())
                await store.put("shared", worker.encode())
                if await store.reserve(f"race-{i}", worker, 60):
                    won.append(f"race-{i}")
        finally:
            await store.close()
        return worker, (won, began, time.time())

    start.wait(DEADLINE_S)
    try:
        results.put(asyncio.run(main()))
    except BaseException as exc:
        results.put((worker, f"{type(exc).__name__}: {exc}"))
        raise


def test_sqlite_concurrent_writers_in_two_processes(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "cache.db"  # both processes also race to create the file and schema
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    results = context.Queue()
    processes = [context.Process(target=_hammer, args=(str(path), name, start, results)) for name in ("p1", "p2")]
    for process in processes:
        process.start()
    outcomes = dict(results.get(timeout=60) for _ in processes)
    for process in processes:
        process.join(DEADLINE_S)
    results.close()
    results.join_thread()

    assert all(isinstance(outcome, tuple) for outcome in outcomes.values()), outcomes
    assert [process.exitcode for process in processes] == [0, 0]
    (won1, began1, ended1), (won2, began2, ended2) = outcomes["p1"], outcomes["p2"]
    assert max(began1, began2) < min(ended1, ended2), "the two writers did not overlap"
    assert not set(won1) & set(won2), "a race key was reserved by both processes"
    assert len(won1) + len(won2) == PROCESS_WRITES, "every race key reserved by one process"

    async def check() -> None:
        store = SQLiteCacheStore(path)
        try:
            for worker in ("p1", "p2"):
                for i in (0, PROCESS_WRITES // 2, PROCESS_WRITES - 1):
                    assert await store.get(f"{worker}-{i}") == f"{worker}:{i}".encode()
            assert await store.get("shared") in (b"p1", b"p2")
        finally:
            await store.close()

    asyncio.run(check())


# --- Redis specifics --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["put", "release"])
def test_redis_waiters_are_woken_by_notification_not_polling(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, ending: str
) -> None:
    from flyte_celery._cache import redis_store

    # With the lock poll far beyond the deadline, only the pub/sub message can end the wait in time.
    monkeypatch.setattr(redis_store, "LOCK_POLL_INTERVAL_S", 10 * DEADLINE_S)
    prefix = f"test-{uuid.uuid4().hex}:"

    async def body(holder: CacheStore, waiter_store: CacheStore) -> None:
        assert await holder.reserve("k", "alice", 60)
        waiter = asyncio.create_task(waiter_store.wait_for("k", 20 * DEADLINE_S))
        done, _ = await asyncio.wait({waiter}, timeout=0.2)
        assert not done
        if ending == "put":
            await holder.put("k", b"v")
        else:
            await holder.release("k", "alice")
        assert await asyncio.wait_for(waiter, DEADLINE_S) == (b"v" if ending == "put" else None)

    run(lambda: redis_store.RedisCacheStore(redis_url, prefix=prefix), body, count=2)


def test_redis_store_refuses_a_second_event_loop(redis_url: str) -> None:
    from flyte_celery._cache.redis_store import RedisCacheStore

    store = RedisCacheStore(redis_url, prefix=f"test-{uuid.uuid4().hex}:")

    async def first() -> None:
        await store.put("k", b"v")

    async def second() -> None:
        with pytest.raises(RuntimeError, match="one store per loop"):
            await store.get("k")

    home = asyncio.new_event_loop()
    try:
        home.run_until_complete(first())
        asyncio.run(second())
    finally:
        home.run_until_complete(store.close())
        home.close()


def test_redis_key_layout_and_entry_ttl(redis_url: str, redis_client: Any) -> None:
    from flyte_celery._cache.redis_store import RedisCacheStore

    async def body(store: CacheStore) -> None:
        await store.put("g:abc", b"v")
        assert await store.reserve("g:abc", "alice", 30)

    run(lambda: RedisCacheStore(redis_url, prefix="pfx:", entry_ttl_s=100), body)
    # The `{<key>}` hash tag keeps an entry and its lock in one Redis Cluster slot.
    assert redis_client.get("pfx:cache:{g:abc}") == b"v"
    assert 0 < redis_client.ttl("pfx:cache:{g:abc}") <= 100
    assert redis_client.get("pfx:cache-lock:{g:abc}") == b"alice"
    assert 0 < redis_client.pttl("pfx:cache-lock:{g:abc}") <= 30_000
