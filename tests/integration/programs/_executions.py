"""How test programs tell the tests what ran: counts per name in a Redis hash on the cluster's Redis (the worker's
`FLYTE_CELERY_REDIS_URL`), which a test reads back with `executions`."""

from __future__ import annotations

import os

import redis

EXECUTIONS_KEY = "test:executions"


def cluster_redis() -> redis.Redis:
    """A client on the Redis the running process was pointed at; close it after use."""
    return redis.Redis.from_url(os.environ["FLYTE_CELERY_REDIS_URL"])


def count(name: str, key: str = EXECUTIONS_KEY) -> None:
    """Add one execution of `name`."""
    client = cluster_redis()
    try:
        client.hincrby(key, name, 1)
    finally:
        client.close()


def executions(client: redis.Redis, name: str, key: str = EXECUTIONS_KEY) -> int:
    """How many executions of `name` were counted."""
    return int(client.hget(key, name) or 0)
