"""Soak: many actions through flyte-celery and through raw Celery; worker memory and Redis keys and bytes as they
run, and again once the retention TTLs have passed.

    python bench/soak.py [--actions 10000] [--fan-out 500] [--retention-s 60] [--concurrency 2] [--redis-db 12]

flyte-celery runs `actions / (fan-out + 1)` remote runs one after the other, each a root that gathers `fan-out`
no-op children; raw Celery sends the same number of no-op tasks as `group`s of `fan-out`, joined with
`join_native`. Each side has its own worker (prefork, `-c --concurrency`, the same flags) and its own Redis DB on
127.0.0.1:6379 (`--redis-db` and the next one, flushed at the start and the end), holding its broker queue and its
results, so the keys and bytes of each are counted apart. flyte-celery keeps results and run records for
`--retention-s` (`retention.results_s` / `runs_s`), raw Celery its results as long (`result_expires`).

Printed: one row per sample (after every fifth of the work, at the end, and once both sides' TTLs have passed) with
each side's worker RSS (main process plus pool), Redis keys and bytes (the sum of `MEMORY USAGE` over the DB's
keys), and flyte-celery / raw Celery ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if not __package__:  # run as `python bench/soak.py`: make `bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
from pydantic import ValidationError

import flyte_celery as flyte
from bench._setup import REDIS_DBS, positive_int, prepare_redis, redis_db
from bench._table import format_ratio, ratio, render_table
from bench._workers import WORKER_FLAGS, WorkerProcess, start_worker, wait_ready
from bench.overhead import fan_out, noop
from flyte_celery._config_model import RetentionSettings

SIGNING_KEY = "flyte-celery-bench-signing-key"
RUN_DEADLINE_S = 300.0
SAMPLES = 5  # during the work, after every fifth of it
TTL_MARGIN_S = 10.0  # waited past the retention, for Redis's active expiry to catch up
SCAN_BATCH = 1000
OURS = "flyte-celery"
RAW = "raw Celery"


@dataclass
class Sample:
    label: str
    actions: int
    rss_bytes: int
    keys: int
    redis_bytes: int


def redis_usage(client: redis.Redis) -> tuple[int, int]:
    """(keys, bytes) of the client's DB: `DBSIZE` and the sum of `MEMORY USAGE` of every key."""
    total = 0
    batch_keys: list[Any] = []

    def flush() -> int:
        pipe = client.pipeline(transaction=False)
        for key in batch_keys:
            pipe.memory_usage(key, samples=0)
        used = sum(value or 0 for value in pipe.execute())
        batch_keys.clear()
        return used

    for key in client.scan_iter(count=SCAN_BATCH):
        batch_keys.append(key)
        if len(batch_keys) >= SCAN_BATCH:
            total += flush()
    total += flush()
    return int(client.dbsize()), total


class Side:
    """One side of the soak: its worker, its Redis DB, and how it runs one batch of `n` no-op actions."""

    def __init__(self, name: str, worker: WorkerProcess, client: redis.Redis) -> None:
        self.name = name
        self.worker = worker
        self.client = client
        self.samples: list[Sample] = []
        self.finished_at = 0.0

    def sample(self, label: str, actions: int) -> None:
        keys, used = redis_usage(self.client)
        self.samples.append(Sample(label, actions, self.worker.rss_bytes(), keys, used))


def flyte_batch(n: int) -> int:
    run = flyte.with_runcontext(mode="remote").run(fan_out, n)
    return int(run.outputs(timeout=RUN_DEADLINE_S).o0) + 1  # the children and the root


def flyte_probe() -> Any:
    """`probe(timeout)`: has one remote run (started on the first call) succeeded yet?"""
    started: list[Any] = []

    def probe(timeout: float) -> bool:
        if not started:
            started.append(flyte.with_runcontext(mode="remote").run(noop, 1))
        return bool(started[0].wait(timeout=timeout) == flyte.ActionPhase.SUCCEEDED)

    return probe


def soak(side: Side, run_batch: Any, actions: int, fan_out: int) -> None:
    batches = max(1, math.ceil(actions / (fan_out + 1)))
    done = 0
    side.sample("start", 0)
    for index in range(batches):
        done += run_batch(fan_out)
        if (index + 1) % max(1, batches // SAMPLES) == 0 and index + 1 < batches:
            side.sample(f"{100 * (index + 1) // batches}%", done)
    side.finished_at = time.monotonic()
    side.sample("done", done)


def report(sides: list[Side], args: argparse.Namespace) -> str:
    ours, raw = sides
    rows = []
    for mine, theirs in zip(ours.samples, raw.samples, strict=True):
        rows.append([
            mine.label, f"{mine.actions:,} / {theirs.actions:,}",
            f"{mine.rss_bytes / 2**20:,.1f} MiB", f"{theirs.rss_bytes / 2**20:,.1f} MiB",
            format_ratio(ratio(mine.rss_bytes, theirs.rss_bytes)),
            f"{mine.keys:,}", f"{theirs.keys:,}", format_ratio(ratio(mine.keys, theirs.keys)),
            f"{mine.redis_bytes / 2**10:,.0f} KiB", f"{theirs.redis_bytes / 2**10:,.0f} KiB",
            format_ratio(ratio(mine.redis_bytes, theirs.redis_bytes)),
        ])  # fmt: skip
    headers = ["sample", "actions (ours / raw)", "RSS ours", "RSS raw", "ratio", "keys ours", "keys raw", "ratio",
               "Redis ours", "Redis raw", "ratio"]  # fmt: skip
    setup = (
        f"{args.actions:,} actions in batches of {args.fan_out}; workers prefork -c {args.concurrency}, "
        f"{' '.join(WORKER_FLAGS)}; retention {args.retention_s} s on both sides"
    )
    return setup + "\n\n" + render_table(headers, rows, left_columns=2)


def claim_dbs(first: int) -> list[str]:
    """The URLs of DB `first` (ours) and the next one (raw Celery's), flushed (see `prepare_redis`)."""
    try:
        return [prepare_redis(db) for db in (first, first + 1)]
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--actions", type=positive_int, default=10_000)
    parser.add_argument("--fan-out", type=positive_int, default=500)
    parser.add_argument("--retention-s", type=positive_int, default=60)
    parser.add_argument("--concurrency", type=positive_int, default=2)
    parser.add_argument("--redis-db", type=redis_db, default=12, help="this DB and the next one (default 12)")
    args = parser.parse_args()
    if args.redis_db == max(REDIS_DBS):
        parser.error(f"--redis-db {args.redis_db}: the raw side uses the next DB, and there is none")
    try:
        RetentionSettings(results_s=args.retention_s, runs_s=args.retention_s)
    except ValidationError as exc:
        parser.error(f"--retention-s {args.retention_s}: {exc.errors()[0]['msg'].lower()}")
    ours_url, raw_url = claim_dbs(args.redis_db)
    ours_client, raw_client = redis.Redis.from_url(ours_url), redis.Redis.from_url(raw_url)
    queue = f"soak-{secrets.token_hex(3)}"
    ours_env = {
        "FLYTE_CELERY_BROKER_URL": ours_url,
        "FLYTE_CELERY_REDIS_URL": ours_url,
        "FLYTE_CELERY_RUN_QUEUE": queue,
        "FLYTE_CELERY_SECURITY_SIGNING_KEY": SIGNING_KEY,
        "FLYTE_CELERY_RETENTION_RESULTS_S": str(args.retention_s),
        "FLYTE_CELERY_RETENTION_RUNS_S": str(args.retention_s),
    }
    raw_env = {"BENCH_RAW_BROKER_URL": raw_url, "BENCH_RAW_BACKEND_URL": raw_url, "BENCH_RAW_QUEUE": queue,
               "BENCH_RAW_RESULT_EXPIRES_S": str(args.retention_s)}  # fmt: skip
    os.environ.update(ours_env)
    flyte.init_from_config()
    from bench._raw_app import NOOP_TASK, make_raw_app

    raw_app = make_raw_app(raw_url, raw_url, queue, result_expires_s=args.retention_s)
    noop_task = raw_app.tasks[NOOP_TASK]

    def raw_batch(n: int) -> int:
        from celery import group

        return len(group(noop_task.s(i) for i in range(n)).apply_async().join_native(timeout=RUN_DEADLINE_S))

    def raw_probe(timeout: float) -> bool:
        try:
            return bool(noop_task.delay(0).get(timeout=timeout) == 0)
        except Exception:
            return False

    with tempfile.TemporaryDirectory() as scratch:
        log_dir = Path(scratch)
        workers = []
        try:
            workers.append(start_worker("flyte_celery.worker", queue, args.concurrency, ours_env, log_dir))
            workers.append(start_worker("bench._raw_app", queue, args.concurrency, raw_env, log_dir))
            wait_ready(workers[:1], flyte_probe(), OURS)
            wait_ready(workers[1:], raw_probe, RAW)
            sides = [Side(OURS, workers[0], ours_client), Side(RAW, workers[1], raw_client)]
            soak(sides[0], flyte_batch, args.actions, args.fan_out)
            soak(sides[1], raw_batch, args.actions, args.fan_out)
            expire_at = max(side.finished_at for side in sides) + args.retention_s + TTL_MARGIN_S
            print(f"waiting {expire_at - time.monotonic():.0f} s for the TTLs to pass...", flush=True)
            time.sleep(max(0.0, expire_at - time.monotonic()))  # a benchmark waiting out a TTL, not a test
            for side in sides:
                side.sample(f"after {args.retention_s} s TTL", side.samples[-1].actions)
            print(report(sides, args))
        finally:
            for worker in workers:
                worker.stop()
            raw_app.close()
            for client in (ours_client, raw_client):
                with contextlib.suppress(redis.RedisError):
                    client.flushdb()
                client.close()


if __name__ == "__main__":
    main()
