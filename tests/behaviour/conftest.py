"""Fixtures of the behaviour suite: the execution mode, a runner bound to it, and per-test isolated settings.

Every test runs once per entry of `MODES`. Tests start runs only through `runner` and assert on what tasks return
(or write under `tmp_path`), never on state of this process, so the same tests hold when tasks run on Celery
workers in other processes.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

import flyte_celery as flyte
from tests._services import claim_redis_db, ensure_redis, redis_base_url, release_redis_db, wait_until
from tests._workers import WorkerFactory

# The Celery modes point the test process at the session's cluster (`behaviour_cluster`, see `tests/_workers.py`).
MODES: tuple[str, ...] = ("local", "remote", "hybrid")
# Slots of the session's worker. Leaves hold theirs while running, so at most this many run at once; the
# concurrency tests have exactly this many children meet.
CLUSTER_CONCURRENCY = 4
# Every key of the Redis cache store starts with this, in the old layout (`flyte_celery:cache:<key>`,
# `flyte_celery:cache-lock:<key>`) and the new one (`flyte_celery:cache:{<key>}`, ...). A SCAN pattern.
CACHE_KEY_PATTERN = "flyte_celery:cache*"
# Keys asked for per SCAN step and deleted per DEL.
CACHE_PURGE_BATCH = 500
# How long the runner waits for a run of a Celery mode to end.
RUN_DEADLINE_S = 60.0

# `TaskContext.mode` of a child action in each run mode: children of a hybrid run execute on the fleet.
CHILD_MODE: dict[str, str] = {"local": "local", "remote": "remote", "hybrid": "remote"}


class Runner(Protocol):
    def __call__(self, task: Any, *args: Any, **run_options: Any) -> flyte.Run: ...


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """The execution mode of the runs started by `runner`."""
    return str(request.param)


@pytest.fixture(scope="session")
def behaviour_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerFactory]:
    """One worker for the whole suite, on a Redis DB and a queue of its own (never flushed by other tests)."""
    base = redis_base_url()
    ensure_redis(base)
    db = claim_redis_db(base)
    url = f"{base}/{db}"
    factory = WorkerFactory(url, url, f"behaviour-{secrets.token_hex(4)}", tmp_path_factory.mktemp("behaviour-workers"))
    try:
        factory.start(concurrency=CLUSTER_CONCURRENCY)
        yield factory
    finally:
        factory.stop_all()
        release_redis_db(base, db)


@pytest.fixture(autouse=True)
def isolated_settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Settings read afresh from config and environment, and an empty cache for this test.

    Local mode gets a cache file of this test's own. The Celery modes share the session's cluster and its Redis
    DB, so every cache key there is deleted first (run records and bundles are kept: the worker is shared); tests
    run one at a time, so no test reads an entry another one wrote. The settings are left in place after the test:
    they point into pytest's temporary directory, never at the user's `~/.flyte-celery` cache.
    """
    cache_path = tmp_path_factory.mktemp("cache") / "cache.db"
    monkeypatch.setenv("FLYTE_CELERY_LOCAL_CACHE_PATH", str(cache_path))
    if "mode" in request.fixturenames and request.getfixturevalue("mode") != "local":
        cluster: WorkerFactory = request.getfixturevalue("behaviour_cluster")
        for key, value in cluster.env.items():
            monkeypatch.setenv(key, value)
        purge_cache_keys(cluster.redis_url)
    flyte.init_from_config()
    return cache_path


def cache_keys(redis_url: str) -> list[bytes]:
    """Every cache key in the Redis DB at `redis_url`."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return list(client.scan_iter(match=CACHE_KEY_PATTERN, count=CACHE_PURGE_BATCH))
    finally:
        client.close()


def purge_cache_keys(redis_url: str) -> int:
    """Delete every cache key in the Redis DB at `redis_url`, in batches found by SCAN; returns how many."""
    import redis

    client = redis.Redis.from_url(redis_url)
    deleted = 0
    batch: list[bytes] = []
    try:
        # SCAN may return a key twice and tolerates deletes while it runs; DEL of a gone key counts nothing.
        for key in client.scan_iter(match=CACHE_KEY_PATTERN, count=CACHE_PURGE_BATCH):
            batch.append(key)
            if len(batch) == CACHE_PURGE_BATCH:
                deleted += client.delete(*batch)
                batch.clear()
        if batch:
            deleted += client.delete(*batch)
    finally:
        client.close()
    return deleted


@pytest.fixture
def runner(mode: str) -> Runner:
    """`runner(task, *args, **run_options)` starts a run in `mode` and returns its finished `Run`.

    Local runs finish (or raise) inside `.run()`; the other modes return at once, so the runner waits for them.
    A failed remote run raises from `run.outputs()`: tests expecting a failure wrap `runner(...).outputs()`.
    """

    def run(task: Any, *args: Any, **run_options: Any) -> flyte.Run:
        started = flyte.with_runcontext(mode=mode, **run_options).run(task, *args)
        if mode != "local":
            phase = started.wait(timeout=RUN_DEADLINE_S)
            if not phase.is_terminal:
                raise AssertionError(f"run {started.name} of {task!r} still {phase} after {RUN_DEADLINE_S:g}s")
        return started

    return run


@pytest.fixture
def run_name() -> Callable[[str], str]:
    """`run_name("my-run")` is "my-run-<random>": run names are unique on a cluster, and runs outlive tests there."""
    return lambda prefix: f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture
def thread_exceptions(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Exceptions that escape threads during the test, collected instead of reported by pytest."""
    caught: list[BaseException] = []

    def collect(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            caught.append(args.exc_value)

    monkeypatch.setattr(threading, "excepthook", collect)
    return caught


@pytest.fixture
def new_threads_ended() -> Callable[[], None]:
    """Call it to wait until every thread started since the fixture was set up has ended (deadline 5 s)."""
    before = set(threading.enumerate())

    def started() -> set[threading.Thread]:
        return set(threading.enumerate()) - before

    def wait() -> None:
        try:
            wait_until(lambda: not started(), 5.0, "threads started by the test to end")
        except AssertionError:
            raise AssertionError(f"threads still alive: {sorted(t.name for t in started())}") from None

    return wait
