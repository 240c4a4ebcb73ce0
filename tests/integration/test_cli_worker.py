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


def test_ctrl_c_on_a_followed_remote_run_aborts_the_run(worker_factory: WorkerFactory, tmp_path: Path) -> None:
    worker_factory.start(concurrency=1)
    script = Path(sys.executable).with_name("flyte-celery")
    program = REPO_ROOT / "tests" / "integration" / "programs" / "slow.py"
    out = tmp_path / "client.out"
    with out.open("wb") as sink:
        client = subprocess.Popen(
            [str(script), "run", "--mode", "remote", "--follow", str(program), "sequential_parent",
             "--n", "3", "--seconds", "30"],
            stdout=sink, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
            env={**os.environ, **worker_factory.env, "PYTHONFAULTHANDLER": "1"},  # SIGABRT dumps its threads
        )  # fmt: skip
    try:
        line = wait_until(lambda: _run_line(out), 30, "the client to print the run name")
        client.send_signal(signal.SIGINT)
        try:
            code = client.wait(timeout=30)
        except subprocess.TimeoutExpired:
            client.send_signal(signal.SIGABRT)
            client.wait(timeout=30)
            raise AssertionError(f"the client did not end after Ctrl-C; its threads:\n{out.read_text()}") from None
        assert code == 130, out.read_text()
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(timeout=30)
    run = flyte.Run.get(str(line).removeprefix("run: "))
    wait_until(lambda: run.phase == flyte.ActionPhase.ABORTED, 15, f"run {run.name} to be aborted")
    assert "aborting run" in out.read_text()


def _run_line(path: Path) -> str | None:
    return next((ln for ln in path.read_text().splitlines() if ln.startswith("run: ")), None)
