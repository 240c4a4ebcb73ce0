"""Adversarial review of the remote/hybrid machinery: each xfail(strict) test reproduces a bug; the others pin
behaviour that was suspected and checked to be right."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from typing import Any

import pytest

import flyte_celery as flyte
from flyte_celery._celery.keys import Keys
from flyte_celery.errors import ActionAbortedError, BaseRuntimeError
from tests._services import wait_until
from tests._workers import WorkerFactory
from tests.integration.programs import review_tasks

RUN_DEADLINE_S = 30.0
HANG_DEADLINE_S = 8.0
BLIP_S = 0.5
KEYS = Keys("flyte_celery:")


def _db_of(redis_url: str) -> int:
    return int(redis_url.rsplit("/", 1)[1])


def _intervals(redis_client: Any, tag: str) -> list[tuple[float, float]]:
    raw = redis_client.lrange(f"review:intervals:{tag}", 0, -1)
    return [tuple(float(v) for v in item.decode().split(":")) for item in raw]  # type: ignore[misc]


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    current = best = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best


def test_parent_wakes_up_after_its_reply_channel_reconnects(
    worker_factory: WorkerFactory, redis_client: Any, redis_url: str
) -> None:
    worker_factory.start(concurrency=1)
    gate = f"review-gate-{secrets.token_hex(4)}"
    run = flyte.with_runcontext(mode="remote").run(review_tasks.gated_parent, gate)
    wait_until(lambda: redis_client.exists(f"{gate}:started"), RUN_DEADLINE_S, "the gated child to start")
    # A Redis blip on the worker's Runtime subscriptions (reply + abort channel, on this session's DB) while the
    # child ends: its subscription is dropped again each time it comes back, for a short while.
    db = _db_of(redis_url)
    redis_client.set(gate, "1")
    killed = 0
    end = time.monotonic() + BLIP_S
    while time.monotonic() < end:
        for client in redis_client.client_list():
            if int(client["db"]) == db and int(client.get("sub", 0)) == 2:
                killed += redis_client.client_kill_filter(_id=client["id"])
    assert killed, "the worker's reply-channel subscription was never seen"
    child_results = Keys("flyte_celery:").result(run.name, "*")
    wait_until(lambda: redis_client.keys(child_results), RUN_DEADLINE_S, "the child's result")  # the child is done
    # The subscription is back: a new run on the same (single) pool process completes.
    after = flyte.with_runcontext(mode="remote").run(review_tasks.gated_parent, gate)
    assert after.wait(timeout=RUN_DEADLINE_S) == flyte.ActionPhase.SUCCEEDED
    assert run.wait(timeout=HANG_DEADLINE_S) == flyte.ActionPhase.SUCCEEDED
    assert run.outputs().o0 == 2


# Found by this review and fixed meanwhile (ff941d3): a failed publish used to leave the child marked enqueued.
def test_retry_after_a_failed_child_publish_does_not_hang(
    worker_factory: WorkerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Hybrid: the root runs here; the broker is down, so its first child publish fails and the root retries.
    monkeypatch.setenv("FLYTE_CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    flyte.init_from_config()
    runner = flyte.with_runcontext(mode="hybrid")

    async def attempt() -> BaseException | None:
        try:
            await asyncio.wait_for(runner.run.aio(review_tasks.retrying_root, 1), HANG_DEADLINE_S)
        except BaseRuntimeError as err:
            return err
        except asyncio.TimeoutError as err:
            return err
        return None

    outcome = asyncio.run(attempt())
    # Expected: both attempts fail to publish and the run raises; observed: the second attempt hangs.
    assert isinstance(outcome, BaseRuntimeError), f"run did not fail, it hung ({outcome!r})"


def _start_hybrid_in_thread(name: str, marker: str) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["run"] = flyte.with_runcontext(mode="hybrid", name=name).run(review_tasks.waits_for_marker, marker)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def _run_record_exists(redis_client: Any, name: str) -> bool:
    return bool(redis_client.exists(KEYS.run(name)))


def test_abort_stops_a_hybrid_root(worker_factory: WorkerFactory, redis_client: Any) -> None:
    name = f"review-hybrid-{secrets.token_hex(4)}"
    marker = f"{name}:go"
    thread, box = _start_hybrid_in_thread(name, marker)
    try:
        wait_until(lambda: _run_record_exists(redis_client, name), RUN_DEADLINE_S, "the hybrid run record")
        flyte.Run.get(name).abort()
    finally:
        redis_client.set(marker, "1")  # the root ends now unless the abort stopped it
        thread.join(RUN_DEADLINE_S)
    assert not thread.is_alive()
    assert isinstance(box.get("error"), ActionAbortedError), f".run() returned {box.get('run')!r} after abort"


def test_a_running_hybrid_run_is_seen_as_running(worker_factory: WorkerFactory, redis_client: Any) -> None:
    name = f"review-hybrid-{secrets.token_hex(4)}"
    marker = f"{name}:go"
    thread, _ = _start_hybrid_in_thread(name, marker)
    try:
        wait_until(lambda: _run_record_exists(redis_client, name), RUN_DEADLINE_S, "the hybrid run record")
        phase = flyte.Run.get(name).phase
    finally:
        redis_client.set(marker, "1")
        thread.join(RUN_DEADLINE_S)
    assert phase == flyte.ActionPhase.RUNNING


def test_names_seq_numbers_map_window_and_sync_parents_on_workers(
    worker_factory: WorkerFactory, redis_client: Any
) -> None:
    worker_factory.start(concurrency=4)
    run = flyte.with_runcontext(mode="remote").run(review_tasks.checks_root, 5)
    assert run.wait(timeout=RUN_DEADLINE_S) == flyte.ActionPhase.SUCCEEDED
    assert run.outputs().o0 == {"twice": 10, "two_parents": 10, "mapped": 6, "from_sync": 11}
    executions = {k.decode(): int(v) for k, v in redis_client.hgetall("review:executions").items()}
    # The same call twice in one gather: two children (seq 0 and 1). The same call from two parents: two children.
    assert executions == {"twice-5": 2, "shared-5": 2, "sync-5": 1}
    for tag in ("map", "sync-map"):
        intervals = _intervals(redis_client, tag)
        assert len(intervals) == 4
        assert _max_overlap(intervals) == 2, (tag, intervals)  # map's window of 2, on a 4-slot worker


def test_max_action_concurrency_bounds_children_on_workers(worker_factory: WorkerFactory, redis_client: Any) -> None:
    worker_factory.start(concurrency=4)
    run = flyte.with_runcontext(mode="remote", max_action_concurrency=2).run(review_tasks.bounded_root, 4)
    assert run.wait(timeout=RUN_DEADLINE_S) == flyte.ActionPhase.SUCCEEDED
    intervals = _intervals(redis_client, "bounded")
    assert len(intervals) == 4
    assert _max_overlap(intervals) == 2, intervals
