"""Cache isolation: every test starts with an empty cache, although the Celery modes share one cluster and Redis DB.

`isolated_settings` deletes the cluster DB's cache keys before each test of a Celery mode. These tests run the same
cached task on the same input in every mode, so without that each would read the entry the one before it wrote.
"""

from __future__ import annotations

import secrets

import pytest

from tests._workers import WorkerFactory
from tests.behaviour.conftest import (
    CACHE_KEY_PATTERN,
    CACHE_PURGE_BATCH,
    MODES,
    Runner,
    cache_keys,
    purge_cache_keys,
)
from tests.behaviour.programs import caching

CELERY_MODES = [mode for mode in MODES if mode != "local"]
# No other test runs the cached task on this input.
SHARED_INPUT = 424_242


@pytest.fixture(scope="module")
def earlier_tokens() -> list[str]:
    """Tokens the cached task returned in the earlier tests of this module: each one was cached when returned."""
    return []


def token(runner: Runner) -> str:
    value = runner(caching.auto_stamp, SHARED_INPUT).outputs()[0]
    assert isinstance(value, str)
    return value


@pytest.mark.parametrize("mode", CELERY_MODES)
def test_the_cluster_db_holds_no_cache_key_when_a_test_starts(
    mode: str, runner: Runner, behaviour_cluster: WorkerFactory, earlier_tokens: list[str]
) -> None:
    assert cache_keys(behaviour_cluster.redis_url) == []

    earlier_tokens.append(token(runner))

    # What the store wrote matches the pattern the purge deletes, so the next test will not find it.
    assert cache_keys(behaviour_cluster.redis_url)


def test_no_test_reads_an_entry_an_earlier_test_wrote(runner: Runner, earlier_tokens: list[str]) -> None:
    first = token(runner)

    assert token(runner) == first  # the entry is cached within the test...
    assert first not in earlier_tokens  # ...but none of the earlier tests' entries was found
    earlier_tokens.append(first)


@pytest.mark.parametrize("mode", ["remote"])
def test_the_purge_deletes_cache_keys_only(
    mode: str, runner: Runner, behaviour_cluster: WorkerFactory, earlier_tokens: list[str]
) -> None:
    import redis

    run = runner(caching.auto_stamp, SHARED_INPUT)
    earlier_tokens.append(run.outputs()[0])
    client = redis.Redis.from_url(behaviour_cluster.redis_url)
    tag = secrets.token_hex(4)
    # More than two batches, in both key layouts, next to keys that only look alike.
    planted = [f"flyte_celery:cache:{{{tag}-{i}}}" for i in range(CACHE_PURGE_BATCH)]
    planted += [f"flyte_celery:cache-lock:{tag}-{i}" for i in range(CACHE_PURGE_BATCH + 1)]
    lookalikes = [f"flyte_celery:tests:cache:{tag}", f"flyte_celery_cache:{tag}", f"tests:flyte_celery:cache:{tag}"]
    try:
        client.mset(dict.fromkeys(planted + lookalikes, b"x"))
        run_keys = set(client.scan_iter(match=f"*{run.name}*"))
        assert run_keys, f"no record of run {run.name} in the cluster DB"
        assert len(cache_keys(behaviour_cluster.redis_url)) > len(planted)  # the run's entry too

        deleted = purge_cache_keys(behaviour_cluster.redis_url)

        assert deleted > len(planted)
        assert list(client.scan_iter(match=CACHE_KEY_PATTERN)) == []
        assert client.exists(*lookalikes) == len(lookalikes)
        assert set(client.scan_iter(match=f"*{run.name}*")) == run_keys
    finally:
        client.delete(*lookalikes)
        client.close()
