"""Real `celery worker` subprocesses for tests: started on their own queue, stopped (and reaped) afterwards."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests._services import wait_until

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKER_START_DEADLINE_S = 30.0
WORKER_STOP_DEADLINE_S = 30.0
TEST_SIGNING_KEY = "flyte-celery-tests-signing-key"


def cluster_env(broker_url: str, redis_url: str, queue: str) -> dict[str, str]:
    """The environment that points a client or a worker at the test cluster."""
    return {
        "FLYTE_CELERY_BROKER_URL": broker_url,
        "FLYTE_CELERY_REDIS_URL": redis_url,
        "FLYTE_CELERY_RUN_QUEUE": queue,
        "FLYTE_CELERY_SECURITY_SIGNING_KEY": TEST_SIGNING_KEY,
    }


@dataclass
class Worker:
    """One `celery worker` process."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def is_ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"worker {self.name} exited with {self.process.returncode}:\n{self.log()[-3000:]}")
        return re.search(rf"{re.escape(self.name)}@\S+ ready\.", self.log()) is not None

    def stop(self, sig: int = signal.SIGTERM, wait: bool = True) -> int | None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig) if sig == signal.SIGKILL else self.process.send_signal(sig)
        if not wait:
            return None
        try:
            return self.process.wait(timeout=WORKER_STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(timeout=WORKER_STOP_DEADLINE_S)


class WorkerFactory:
    """Starts workers against one broker/Redis/queue; `stop_all()` tears every one down."""

    def __init__(self, broker_url: str, redis_url: str, queue: str, log_dir: Path) -> None:
        self.broker_url = broker_url
        self.redis_url = redis_url
        self.queue = queue
        self.log_dir = log_dir
        self.workers: list[Worker] = []

    @property
    def env(self) -> dict[str, str]:
        return cluster_env(self.broker_url, self.redis_url, self.queue)

    def start(self, concurrency: int | None = 1, *extra_args: str, wait: bool = True, **env: str) -> Worker:
        name = f"w{len(self.workers)}-{secrets.token_hex(3)}"
        log_path = self.log_dir / f"{name}.log"
        command = [
            sys.executable, "-m", "celery", "-A", "flyte_celery.worker", "worker",
            "-Q", self.queue, "-n", f"{name}@%h", "-l", "info",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        if concurrency is not None:
            command += ["-c", str(concurrency)]
        command += list(extra_args)
        process_env = {**os.environ, **self.env, **env}
        process_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=process_env, cwd=REPO_ROOT, start_new_session=True
            )
        worker = Worker(name, process, log_path)
        self.workers.append(worker)
        if wait:
            wait_until(worker.is_ready, WORKER_START_DEADLINE_S, f"worker {name} to be ready")
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()


def wait_exit(worker: Worker, deadline_s: float) -> int:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        code = worker.process.poll()
        if code is not None:
            return code
        time.sleep(0.05)
    raise AssertionError(f"worker {worker.name} still running after {deadline_s}s:\n{worker.log()[-2000:]}")


@contextmanager
def cluster_in_use(factory: WorkerFactory) -> Iterator[WorkerFactory]:
    """Points this process at the factory's cluster (environment + `init_from_config()`); stops its workers and
    restores the environment afterwards."""
    import flyte_celery as flyte

    saved = {key: os.environ.get(key) for key in factory.env}
    os.environ.update(factory.env)
    flyte.init_from_config()
    try:
        yield factory
    finally:
        factory.stop_all()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        flyte.init()
