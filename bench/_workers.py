"""`celery worker` processes for the benchmarks: started in a session of their own, measured from /proc, stopped."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKER_READY_DEADLINE_S = 60.0
WORKER_STOP_DEADLINE_S = 20.0
WORKER_FLAGS = ("--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning")


@dataclass
class WorkerProcess:
    """One `celery worker` (main process and its pool), started in a session of its own."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def rss_bytes(self) -> int:
        """Resident memory of the worker's main process and its live pool processes."""
        return sum(process_rss_bytes(pid) for pid in [self.process.pid, *children_of(self.process.pid)])

    def cpu_s(self) -> float:
        """CPU seconds (user + system) used so far by the worker's main process and its live pool processes."""
        return sum(process_cpu_s(pid) for pid in [self.process.pid, *children_of(self.process.pid)])

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"worker {self.name} exited with {self.process.returncode}:\n{self.log_tail()}")

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL to the whole session if it does not end in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=WORKER_STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=WORKER_STOP_DEADLINE_S)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_s(pid: int) -> float:
    """utime + stime of a process from /proc (0 where there is no /proc or the process is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of proc(5), after "pid (comm)"


def process_rss_bytes(pid: int) -> int:
    """VmRSS of a process from /proc (0 where there is no /proc or the process is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def children_of(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def start_worker(
    app_module: str,
    queue: str,
    concurrency: int,
    env_vars: dict[str, str],
    log_dir: Path,
    *,
    launcher: list[str] | None = None,
    pool: str = "prefork",
) -> WorkerProcess:
    """Start `celery -A app_module worker -P pool` on `queue` (through `launcher` instead of `python -m celery`, if
    given: for `-P gevent` it must monkeypatch first, as `celery.__main__` does)."""
    name = f"{app_module.rsplit('.', 1)[0].replace('.', '-')}-{secrets.token_hex(3)}"
    launcher = launcher or [sys.executable, "-m", "celery"]
    command = [
        *launcher, "-A", app_module, "worker", "-Q", queue, "-n", f"{name}@%h", "-P", pool,
        "-c", str(concurrency), *WORKER_FLAGS,
    ]  # fmt: skip
    if app_module.startswith("bench."):
        command.append("-E")  # flyte-celery's app turns task events on itself (worker_send_task_events=True)
    process_env = {**os.environ, **env_vars}
    process_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        # A scratch working directory: no stray config.yaml is picked up.
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=process_env, cwd=log_dir, start_new_session=True
        )
    return WorkerProcess(name, process, log_path)


@contextlib.contextmanager
def worker_group(starts: list[Callable[[], WorkerProcess]]) -> Iterator[list[WorkerProcess]]:
    """Start the workers, and stop every one that started whatever happens."""
    workers: list[WorkerProcess] = []
    try:
        for start in starts:
            workers.append(start())
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def wait_ready(workers: list[WorkerProcess], probe: Callable[[float], bool], what: str) -> None:
    """Poll `probe(timeout)` (one task round trip) until it succeeds; fail early if a worker died."""
    end = time.monotonic() + WORKER_READY_DEADLINE_S
    while time.monotonic() < end:
        for worker in workers:
            worker.check_alive()
        if probe(0.5):
            return
    tails = "\n".join(worker.log_tail(1000) for worker in workers)
    raise RuntimeError(f"{what} workers not ready after {WORKER_READY_DEADLINE_S:g}s:\n{tails}")
