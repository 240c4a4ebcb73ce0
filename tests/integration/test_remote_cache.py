"""The Redis cache in remote mode: shared by runs and workers, survives restarts, honours every run flag, and uses
the same keys as local mode. Executions are counted in Redis by the tasks themselves (`test:executions`)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import flyte_celery as flyte
from flyte_celery._cache import CacheLookupScope, VersionParameters, cache_key, inputs_hash
from flyte_celery._task import TaskTemplate
from tests._workers import WorkerFactory
from tests.integration.programs import remote_cache

RUN_DEADLINE_S = 30.0
CACHE_PREFIX = "flyte_celery:cache:"
# A `cache_key` in the hash tag that ends a Redis key: "{g:<sha256>}" or "{pd:<project>:<domain>:<sha256>}".
CACHE_KEY_AT_END = re.compile(r"\{((?:g|pd:[^:]*:[^:]*):[0-9a-f]{64})\}$")


def _executions(redis_client: Any, name: str) -> int:
    return int(redis_client.hget("test:executions", name) or 0)


def _run(task: TaskTemplate[Any, Any], *args: Any, **params: Any) -> Any:
    run = flyte.with_runcontext(mode="remote", **params).run(task, *args)
    assert run.wait(timeout=RUN_DEADLINE_S) == flyte.ActionPhase.SUCCEEDED, run.name
    return run.outputs().o0


def _cache_entries(redis_client: Any) -> list[str]:
    """The Redis keys of cache entries (not the transient serialize locks)."""
    return [key.decode() for key in redis_client.scan_iter(match=f"{CACHE_PREFIX}*") if b"cache-lock:" not in key]


def _cache_keys(redis_client: Any) -> set[str]:
    """The `cache_key`s of the stored entries."""
    keys = set()
    for entry in _cache_entries(redis_client):
        found = CACHE_KEY_AT_END.search(entry)
        assert found, f"{entry!r} does not end with a cache key"
        keys.add(found.group(1))
    return keys


def _expected_key(
    task: TaskTemplate[Any, Any],
    inputs: dict[str, Any],
    scope: CacheLookupScope = "global",
    project: str | None = None,
    domain: str | None = None,
) -> str:
    """The key computed here, from the task's source, with the cache module's own functions."""
    return cache_key(
        task_name=task.name,
        inputs_hash=inputs_hash(inputs, task.interface.input_hints),
        interface_hash=task.interface.hash,
        cache_version=task.cache.get_version(VersionParameters(func=task.func, image=task.image)),
        scope=scope,
        project=project,
        domain=domain,
    )


def test_a_cached_result_is_shared_by_runs_and_outlives_the_worker_that_wrote_it(
    worker_factory: WorkerFactory, redis_client: Any
) -> None:
    worker = worker_factory.start(concurrency=1)
    assert _run(remote_cache.cached_square, 3) == 9
    assert _run(remote_cache.cached_square, 3) == 9
    assert _run(remote_cache.parent_of_cached, 3) == 9  # as a child, on the worker: same entry
    assert _executions(redis_client, "square-3") == 1
    assert _cache_keys(redis_client) == {_expected_key(remote_cache.cached_square, {"x": 3})}

    worker.stop()
    worker_factory.start(concurrency=1)
    assert _run(remote_cache.cached_square, 3) == 9
    assert _executions(redis_client, "square-3") == 1

    assert _run(remote_cache.cached_square, 3, overwrite_cache=True) == 9
    assert _executions(redis_client, "square-3") == 2


def test_disable_run_cache_neither_reads_nor_writes(worker_factory: WorkerFactory, redis_client: Any) -> None:
    worker_factory.start(concurrency=1)
    assert _run(remote_cache.cached_square, 3) == 9
    keys_before = _cache_keys(redis_client)
    assert _run(remote_cache.cached_square, 3, disable_run_cache=True) == 9
    assert _executions(redis_client, "square-3") == 2  # did not read the entry

    assert _run(remote_cache.parent_of_cached, 4, disable_run_cache=True) == 16
    assert _run(remote_cache.cached_square, 4, disable_run_cache=True) == 16
    assert _executions(redis_client, "square-4") == 2
    assert _cache_keys(redis_client) == keys_before  # wrote nothing, from the client's root or a worker's child
    assert _run(remote_cache.cached_square, 4) == 16
    assert _executions(redis_client, "square-4") == 3


def test_project_domain_scope_keeps_projects_apart(worker_factory: WorkerFactory, redis_client: Any) -> None:
    worker_factory.start(concurrency=1)
    scoped = {"cache_lookup_scope": "project-domain", "domain": "development"}
    assert _run(remote_cache.parent_of_cached, 5, project="p1", **scoped) == 25
    assert _run(remote_cache.parent_of_cached, 5, project="p2", **scoped) == 25
    assert _run(remote_cache.cached_square, 5, project="p1", **scoped) == 25
    assert _executions(redis_client, "square-5") == 2
    inputs = {"x": 5}
    assert _cache_keys(redis_client) == {
        _expected_key(remote_cache.cached_square, inputs, "project-domain", "p1", "development"),
        _expected_key(remote_cache.cached_square, inputs, "project-domain", "p2", "development"),
    }
    assert _run(remote_cache.cached_square, 5, project="p1") == 25  # global scope: not the project's entry
    assert _executions(redis_client, "square-5") == 3


def test_serialize_runs_identical_concurrent_calls_once_across_workers(
    worker_factory: WorkerFactory, redis_client: Any
) -> None:
    worker_factory.start(2)
    worker_factory.start(2)
    assert _run(remote_cache.gather_slow_cached, 2) == [20, 20, 20, 20]
    assert _executions(redis_client, "slow_cached") == 1


def test_the_key_a_worker_writes_equals_the_local_mode_key(
    worker_factory: WorkerFactory, redis_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker_factory.start(concurrency=1)
    assert _run(remote_cache.parent_of_cached, 7) == 49  # the child's key is computed on the worker
    expected = _expected_key(remote_cache.cached_square, {"x": 7})
    assert _cache_keys(redis_client) == {expected}

    cache_path = tmp_path / "local-cache.db"
    monkeypatch.setenv("FLYTE_CELERY_LOCAL_CACHE_PATH", str(cache_path))
    flyte.init_from_config()
    local = flyte.with_runcontext(mode="local").run(remote_cache.parent_of_cached, 7)
    assert local.outputs().o0 == 49
    assert _executions(redis_client, "square-7") == 2  # the SQLite cache is local mode's own
    with sqlite3.connect(cache_path) as conn:
        local_keys = {row[0] for row in conn.execute("SELECT key FROM cache_entries")}
    conn.close()
    assert local_keys == {expected}


def test_cache_entries_use_the_documented_key_layout(worker_factory: WorkerFactory, redis_client: Any) -> None:
    worker_factory.start(concurrency=1)
    assert _run(remote_cache.cached_square, 8) == 64
    expected = _expected_key(remote_cache.cached_square, {"x": 8})
    assert _cache_entries(redis_client) == [f"{CACHE_PREFIX}{{{expected}}}"]


def test_a_parent_answers_a_cached_child_itself_without_a_message(worker_factory: WorkerFactory) -> None:
    worker = worker_factory.start(concurrency=1)
    assert _run(remote_cache.parent_of_cached, 11) == 121  # computes the child and fills the cache

    def children_received() -> int:
        return len(re.findall(rf"Task {re.escape(remote_cache.cached_square.name)}\[\S+\] received", worker.log()))

    assert children_received() == 1
    assert _run(remote_cache.parent_of_cached, 11) == 121
    assert _run(remote_cache.parent_of_cached, 11) == 121
    assert children_received() == 1, "a cache hit sent the child to the fleet"
