"""Redis restarts under a running fleet (a private redis-server that is both broker and state store): a run whose
records are lost fails its waiters clearly (`RunLostError`) instead of hanging, a restart with the data kept lets
the run finish, the very next run after either succeeds, and the outage is logged sparingly."""

from __future__ import annotations

import concurrent.futures
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import flyte_celery as flyte
from flyte_celery._throttle import LOG_INTERVAL_S
from flyte_celery.errors import RunLostError
from tests._redis_servers import RedisProcess
from tests._services import wait_until
from tests._workers import Worker, WorkerFactory, cluster_in_use
from tests.integration.programs import remote_tasks, slow

OUTPUTS_TIMEOUT_S = 90.0
RUN_DEADLINE_S = 60.0
# Our lines about an outage; Celery's own consumer logs its reconnects separately.
OUTAGE_LINE = re.compile(r"flyte_celery: (Redis is unreachable|lease upkeep failed|reply channel)")
PROCESSES_PER_WORKER = 3  # the main process and two pool processes (-c 2)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis", ["--save", "", "--appendonly", "no", "--daemonize", "no"])
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def fleet(private_redis: RedisProcess, tmp_path: Path) -> Iterator[WorkerFactory]:
    url = f"{private_redis.url}/0"
    logs = tmp_path / "workers"
    logs.mkdir()
    with cluster_in_use(WorkerFactory(url, url, f"outage-{secrets.token_hex(4)}", logs)) as factory:
        yield factory


def _restart(server: RedisProcess, keep_data: bool) -> float:
    """Stop Redis (saving its data to disk first if `keep_data`) and start it again; returns the outage in s."""
    started = time.monotonic()
    if keep_data:
        with server.client() as client:
            try:
                client.shutdown(save=True)
            except Exception:
                pass  # the connection ends with the server
        wait_until(lambda: server._process is None or server._process.poll() is not None, 10.0, "Redis to stop")
    server.kill()
    server.start()
    return time.monotonic() - started


def _assert_sparse_outage_logs(worker: Worker, outage_s: float) -> None:
    lines = OUTAGE_LINE.findall(worker.log())
    bound = PROCESSES_PER_WORKER * 2 * (1 + outage_s / LOG_INTERVAL_S)
    assert len(lines) <= bound, f"{len(lines)} outage lines for a {outage_s:.1f}s outage:\n{worker.log()[-3000:]}"


def test_a_run_lost_in_an_empty_restart_fails_its_waiter_and_the_next_run_succeeds(
    private_redis: RedisProcess, fleet: WorkerFactory
) -> None:
    worker = fleet.start(2)
    run = flyte.with_runcontext(mode="remote").run(slow.sequential_parent, 3, 5.0)
    wait_until(lambda: run.phase == flyte.ActionPhase.RUNNING, RUN_DEADLINE_S, "the run to start")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(run.outputs, timeout=OUTPUTS_TIMEOUT_S)
        outage_s = _restart(private_redis, keep_data=False)
        error = waiting.exception(timeout=OUTPUTS_TIMEOUT_S + 10)
    assert isinstance(error, RunLostError), f"expected RunLostError, got {error!r}"
    assert run.name in str(error)
    after = flyte.with_runcontext(mode="remote").run(remote_tasks.add_one, 1)
    assert after.outputs(timeout=RUN_DEADLINE_S).o0 == 2, worker.log()[-3000:]
    assert worker.process.poll() is None
    _assert_sparse_outage_logs(worker, outage_s)


def test_a_restart_that_keeps_the_data_lets_the_run_finish(private_redis: RedisProcess, fleet: WorkerFactory) -> None:
    worker = fleet.start(2)
    run = flyte.with_runcontext(mode="remote").run(slow.sequential_parent, 3, 2.0)
    with private_redis.client() as client:
        wait_until(lambda: client.hget("test:executions", "leaf-0"), RUN_DEADLINE_S, "the first child to start")
    outage_s = _restart(private_redis, keep_data=True)
    assert run.outputs(timeout=OUTPUTS_TIMEOUT_S).o0 == 0 + 1 + 2, worker.log()[-3000:]
    after = flyte.with_runcontext(mode="remote").run(remote_tasks.add_one, 1)
    assert after.outputs(timeout=RUN_DEADLINE_S).o0 == 2
    _assert_sparse_outage_logs(worker, outage_s)


def test_outputs_and_wait_take_a_timeout(fleet: WorkerFactory) -> None:
    run = flyte.with_runcontext(mode="remote").run(remote_tasks.add_one, 1)  # no worker: it stays queued
    with pytest.raises(TimeoutError, match=f"run {run.name} is still queued"):
        run.outputs(timeout=0.5)
    assert run.wait(timeout=0.5) == flyte.ActionPhase.QUEUED
    fleet.start(1)
    assert run.outputs(timeout=RUN_DEADLINE_S).o0 == 2
