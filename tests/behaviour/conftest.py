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

# The next step adds "remote" and "hybrid"; nothing else in the suite changes. Those modes need the test process
# pointed at a cluster (see `tests/_workers.py`) whose workers have 4 slots or more in all: leaves hold their slot,
# and the concurrency tests have 3 children meet at a barrier and 20 children nap at once.
MODES: tuple[str, ...] = ("local", "remote", "hybrid")
# Slots of the session's worker: leaves hold theirs, and the concurrency tests need 4 running at once.
CLUSTER_CONCURRENCY = 4
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
    """Settings read afresh from config and environment, with a local cache of this test's own.

    The settings are left in place after the test: they point into pytest's temporary directory, never at the
    user's `~/.flyte-celery` cache. (The Celery modes keep cache entries in Redis; the caching tests use inputs and
    tokens that do not depend on a fresh cache, but a Redis DB emptied per test keeps them independent.)
    """
    cache_path = tmp_path_factory.mktemp("cache") / "cache.db"
    monkeypatch.setenv("FLYTE_CELERY_LOCAL_CACHE_PATH", str(cache_path))
    if "mode" in request.fixturenames and request.getfixturevalue("mode") != "local":
        cluster: WorkerFactory = request.getfixturevalue("behaviour_cluster")
        for key, value in cluster.env.items():
            monkeypatch.setenv(key, value)
    flyte.init_from_config()
    return cache_path


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
