"""What every remote benchmark starts with: its Redis database (flushed, never one a test session holds), its
arguments' checks, and a header saying on what machine and with which versions the numbers were measured."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import platform
import sys
from pathlib import Path
from typing import Final

REDIS_BASE_URL: Final = "redis://127.0.0.1:6379"
TEST_SESSION_LOCK_KEY: Final = "flyte_celery_tests:session_lock"  # tests/_services.py claims DBs with it
REDIS_DBS: Final = range(16)


def redis_db(text: str) -> int:
    """An argparse type: a Redis database number (0-15)."""
    try:
        db = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if db not in REDIS_DBS:
        raise argparse.ArgumentTypeError(f"{db} is not a Redis database number (0-15)")
    return db


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value


def add_redis_db_argument(parser: argparse.ArgumentParser, default: int, *, what: str = "to use and flush") -> None:
    parser.add_argument("--redis-db", type=redis_db, default=default, help=f"Redis DB {what} (default {default})")


def prepare_redis(db: int) -> str:
    """The URL of DB `db` on the local Redis (started if it is not running), flushed.

    Raises:
        RuntimeError: If a running test session has claimed that DB.
    """
    import redis

    from tests._services import ensure_redis

    ensure_redis(REDIS_BASE_URL)
    url = f"{REDIS_BASE_URL}/{db}"
    client = redis.Redis.from_url(url)
    try:
        if client.exists(TEST_SESSION_LOCK_KEY):
            raise RuntimeError(f"Redis DB {db} is claimed by a running test session: pick another with --redis-db")
        client.flushdb()
    finally:
        client.close()
    return url


def flush_redis(url: str) -> None:
    """Empty the benchmark's DB at the end, unless a test session has claimed it meanwhile."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        if not client.exists(TEST_SESSION_LOCK_KEY):
            client.flushdb()
    finally:
        client.close()


def machine() -> str:
    model = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"{os.cpu_count()} cores ({usable} usable), {model}, {platform.system()} {platform.release()}; load {load}"


def versions(*packages: str) -> str:
    """flyte-celery's version and those of Celery's stack, `packages`, the Redis server and Python."""
    import redis

    server = "?"
    with contextlib.suppress(Exception):
        client = redis.Redis.from_url(REDIS_BASE_URL)
        server = str(client.info("server").get("redis_version", "?"))
        client.close()
    names = ["flyte-celery", "celery", "kombu", "billiard", "redis", *packages]
    found = ", ".join(f"{name} {_version(name)}" for name in names)
    return f"{found}, redis-server {server}, python {platform.python_version()}"


def print_header(argv: list[str], *packages: str) -> None:
    """The command as given, the machine and the versions: the first lines of every benchmark's output."""
    print(f"command: {' '.join([Path(sys.executable).name, sys.argv[0], *argv])}")
    print(f"machine: {machine()}")
    print(f"versions: {versions(*packages)}")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
