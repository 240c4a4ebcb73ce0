from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests._services import claim_redis_db, ensure_redis, redis_base_url, release_redis_db
from tests._workers import WorkerFactory, cluster_in_use


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis URL on a DB number of its own for this test session."""
    base = redis_base_url()
    ensure_redis(base)
    db = claim_redis_db(base)
    yield f"{base}/{db}"
    release_redis_db(base, db)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[object]:
    """A client on the session's DB, emptied before each test (the session lock key is kept)."""
    import redis

    from tests._services import REDIS_LOCK_KEY

    client = redis.Redis.from_url(redis_url)
    lock = client.get(REDIS_LOCK_KEY)
    client.flushdb()
    if lock is not None:
        client.set(REDIS_LOCK_KEY, lock, ex=3600)
    yield client
    client.close()


@pytest.fixture
def worker_factory(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerFactory]:
    """Starts real `celery worker` processes on a queue of this test's own, against the session's Redis DB.

    The test process is pointed at the same cluster (environment + `flyte.init_from_config()`); every worker is
    stopped afterwards.
    """
    queue = f"test-{secrets.token_hex(4)}"
    with cluster_in_use(WorkerFactory(redis_url, redis_url, queue, tmp_path_factory.mktemp(queue))) as factory:
        yield factory
