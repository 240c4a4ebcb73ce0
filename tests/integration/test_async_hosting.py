"""Async actions share their worker: a pool slot is held only while an action computes. Waiting actions are hosted
by their pool process beyond its slot count, up to a bound that stops it taking messages; blocking the event loop
is reported; a killed or stopped process loses none of the actions it hosted; a replayed parent republishes a
child lost between its enqueued mark and its publish, and returns its traces' recorded outputs.

Leaves that "meet" can only finish when all of them are in flight at once, so counts, not timings, prove how many
were hosted together.
"""

from __future__ import annotations

import secrets
import signal
from pathlib import Path
from typing import Any

import flyte_celery as flyte
from flyte_celery._celery.keys import Keys
from tests._services import wait_until
from tests._workers import Worker, WorkerFactory, wait_exit
from tests.integration.programs import hosting
from tests.integration.programs._executions import executions

RUN_DEADLINE_S = 90.0


def _pool_pids(worker: Worker) -> set[int]:
    """The pids of a worker's pool processes (children of its main process)."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == worker.process.pid:
            pids.add(int(stat.parent.name))
    return pids


def test_waiting_leaves_share_one_pool_slot(worker_factory: WorkerFactory) -> None:
    worker = worker_factory.start(concurrency=1)
    tag = f"share-{secrets.token_hex(3)}"
    pids = flyte.with_runcontext(mode="remote").run(hosting.meeting, tag, 12).outputs(timeout=RUN_DEADLINE_S).o0
    assert -1 not in pids, "the twelve leaves were never in flight at once"
    assert set(pids) <= _pool_pids(worker)
    assert len(set(pids)) == 1, "one pool slot hosted all of them"


def test_hybrid_children_share_the_fleet_too(worker_factory: WorkerFactory) -> None:
    worker_factory.start(concurrency=1)
    tag = f"hybrid-{secrets.token_hex(3)}"
    pids = flyte.with_runcontext(mode="hybrid").run(hosting.meeting, tag, 8).outputs().o0
    assert -1 not in pids


def test_at_the_bound_a_process_takes_no_more_and_another_worker_takes_the_rest(
    worker_factory: WorkerFactory,
) -> None:
    bounded = worker_factory.start(1, FLYTE_CELERY_WORKER_MAX_HOSTED_ACTIONS="3")
    other = worker_factory.start(1)
    tag = f"bound-{secrets.token_hex(3)}"
    pids = flyte.with_runcontext(mode="remote").run(hosting.meeting, tag, 8).outputs(timeout=RUN_DEADLINE_S).o0
    assert -1 not in pids, "the eight leaves were never in flight at once"
    on_bounded = [pid for pid in pids if pid in _pool_pids(bounded)]
    on_other = [pid for pid in pids if pid in _pool_pids(other)]
    assert len(on_bounded) + len(on_other) == 8
    assert len(on_bounded) <= 3, f"the bounded process hosted {len(on_bounded)} busy leaves at once"
    assert len(on_other) >= 5


def test_an_async_task_that_blocks_its_event_loop_is_reported(worker_factory: WorkerFactory) -> None:
    worker = worker_factory.start(concurrency=1)
    assert flyte.with_runcontext(mode="remote").run(hosting.hog, 1.5).outputs(timeout=RUN_DEADLINE_S).o0 == "done"
    wait_until(lambda: "blocked this worker process's event loop" in worker.log(), 10, "the loop-lag warning")
    line = next(ln for ln in worker.log().splitlines() if "blocked this worker process's event loop" in ln)
    assert f"task {hosting.hog.name!r}" in line
    assert "sync task" in line


def _start_gated_run(worker_factory: WorkerFactory, redis_client: Any, n: int) -> tuple[Any, str]:
    tag = f"gate-{secrets.token_hex(3)}"
    run = flyte.with_runcontext(mode="remote").run(hosting.gated_many, tag, n)
    wait_until(lambda: int(redis_client.get(f"{tag}:in") or 0) >= n, RUN_DEADLINE_S, f"{n} leaves to be hosted")
    return run, tag


def test_a_killed_process_hosting_200_waiting_leaves_loses_none(
    worker_factory: WorkerFactory, redis_client: Any
) -> None:
    first = worker_factory.start(concurrency=2)
    run, tag = _start_gated_run(worker_factory, redis_client, 200)
    first.stop(signal.SIGKILL)
    second = worker_factory.start(concurrency=2)
    redis_client.set(f"{tag}:go", 1)
    assert run.outputs(timeout=RUN_DEADLINE_S).o0 == sum(range(200)), second.log()[-3000:]
    counts = [executions(redis_client, f"{tag}-{i}") for i in range(200)]
    assert min(counts) >= 1
    assert max(counts) <= 2  # at most once more: the take-over of a leaf that was running


def test_a_warm_shutdown_hands_hosted_leaves_to_another_worker(
    worker_factory: WorkerFactory, redis_client: Any
) -> None:
    first = worker_factory.start(concurrency=2)
    run, tag = _start_gated_run(worker_factory, redis_client, 50)
    second = worker_factory.start(concurrency=2)
    first.stop(signal.SIGTERM, wait=False)
    assert wait_exit(first, 60) == 0
    redis_client.set(f"{tag}:go", 1)
    assert run.outputs(timeout=RUN_DEADLINE_S).o0 == sum(range(50)), second.log()[-3000:]
    assert "handed off" in first.log()


def test_a_replayed_parent_republishes_a_lost_child_and_reuses_its_recorded_trace(
    worker_factory: WorkerFactory, redis_client: Any
) -> None:
    first = worker_factory.start(concurrency=1)
    tag = f"replay-{secrets.token_hex(3)}"
    run = flyte.with_runcontext(mode="remote").run(hosting.parent_with_trace_and_late_child, tag)
    wait_until(lambda: redis_client.llen(hosting.LATE_QUEUE), RUN_DEADLINE_S, "the child to be published")
    first.stop(signal.SIGKILL)
    # As if the worker had died between marking the child enqueued and publishing it: the message is gone.
    redis_client.delete(hosting.LATE_QUEUE)
    assert redis_client.exists(Keys("flyte_celery:").run(run.name))
    second = worker_factory.start(1, "-Q", f"{worker_factory.queue},{hosting.LATE_QUEUE}")
    assert run.outputs(timeout=RUN_DEADLINE_S).o0 == 7 + 2, second.log()[-3000:]
    assert executions(redis_client, f"{tag}-parent") == 2  # the first execution, then the take-over
    assert executions(redis_client, f"{tag}-trace") == 1  # replayed from its recorded output


def test_a_checkpoint_survives_a_worker_taken_over(
    worker_factory: WorkerFactory, redis_client: Any, tmp_path: Path
) -> None:
    first = worker_factory.start(concurrency=1)
    tag = f"ckpt-{secrets.token_hex(3)}"
    run = flyte.with_runcontext(mode="remote", raw_data_path=str(tmp_path)).run(hosting.checkpointed, tag)
    wait_until(lambda: executions(redis_client, f"{tag}-saved"), RUN_DEADLINE_S, "the checkpoint to be saved")
    first.stop(signal.SIGKILL)
    worker_factory.start(concurrency=1)
    assert run.outputs(timeout=RUN_DEADLINE_S).o0 == f"resumed from {tag}-state"
