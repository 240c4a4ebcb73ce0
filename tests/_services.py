"""Real services for the test suite: find them, start them when they are down, or fail saying why."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from urllib.parse import urlparse

SERVICE_START_DEADLINE_S = 20.0
POLL_INTERVAL_S = 0.05
REDIS_DB_COUNT = 16
REDIS_LOCK_KEY = "flyte_celery_tests:session_lock"
REDIS_LOCK_TTL_S = 3600


def wait_until(predicate: Callable[[], object], deadline_s: float, what: str) -> object:
    """Poll `predicate` until it returns a truthy value; fail naming `what` and the last value seen."""
    end = time.monotonic() + deadline_s
    last: object = None
    while time.monotonic() < end:
        last = predicate()
        if last:
            return last
        time.sleep(POLL_INTERVAL_S)
    raise AssertionError(f"timed out after {deadline_s:.1f}s waiting for {what}; last seen: {last!r}")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def ensure_redis(url: str) -> None:
    """Make sure the Redis server named by `url` answers, starting the Debian package's server if needed."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    if port_open(host, port):
        return
    binary = shutil.which("redis-server")
    if host not in ("127.0.0.1", "localhost") or binary is None:
        raise RuntimeError(
            f"Redis is not reachable at {host}:{port} and cannot be started here "
            f"(redis-server {'found' if binary else 'not installed: apt-get install redis-server'}). "
            "Set FLYTE_CELERY_TEST_REDIS_URL to a running server."
        )
    subprocess.run(
        [binary, "--daemonize", "yes", "--bind", host, "--port", str(port), "--save", "", "--appendonly", "no"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wait_until(lambda: port_open(host, port), SERVICE_START_DEADLINE_S, f"redis-server on {host}:{port}")


def redis_base_url() -> str:
    return os.environ.get("FLYTE_CELERY_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def claim_redis_db(base_url: str) -> int:
    """Claim a Redis DB number no other test session on this machine is using (DB 0 is left alone)."""
    import redis

    for db in range(1, REDIS_DB_COUNT):
        client = redis.Redis.from_url(f"{base_url}/{db}")
        try:
            if client.set(REDIS_LOCK_KEY, str(os.getpid()), nx=True, ex=REDIS_LOCK_TTL_S):
                return db
        finally:
            client.close()
    raise RuntimeError(f"every Redis DB 1..{REDIS_DB_COUNT - 1} is claimed by another test session")


def release_redis_db(base_url: str, db: int) -> None:
    import redis

    client = redis.Redis.from_url(f"{base_url}/{db}")
    try:
        client.flushdb()
    finally:
        client.close()
