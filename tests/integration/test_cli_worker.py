"""`flyte-celery worker` starts a plain Celery worker of the fleet."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import flyte_celery as flyte
from tests._services import wait_until
from tests._workers import REPO_ROOT, WorkerFactory
from tests.integration.programs import trees


def test_flyte_celery_worker_runs_actions(worker_factory: WorkerFactory, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    script = Path(sys.executable).with_name("flyte-celery")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(script), "worker", "-Q", worker_factory.queue, "-c", "1", "-n", "cli-worker@%h", "--without-gossip"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **worker_factory.env},
            cwd=REPO_ROOT,
        )
    try:
        wait_until(lambda: "cli-worker@" in log.read_text() and " ready." in log.read_text(), 30, "the worker")
        run = flyte.with_runcontext(mode="remote").run(trees.tree, 2, 2)
        assert run.wait(timeout=60) == flyte.ActionPhase.SUCCEEDED
        assert run.outputs().o0 == 4
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
