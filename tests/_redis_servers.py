"""Private redis-server and sentinel processes, for tests that kill, restart or fail over Redis.

Each process listens on a free port of its own and writes its log in its own directory; a failed start fails showing
that log. Whoever starts a process stops it: use the context managers, which stop it even when the test fails.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests._services import POLL_INTERVAL_S, SERVICE_START_DEADLINE_S, port_open

HOST = "127.0.0.1"
SERVICE_NAME = "mymaster"
STOP_DEADLINE_S = 10.0


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def poll(predicate: Callable[[], object], what: str, deadline_s: float = SERVICE_START_DEADLINE_S) -> object:
    """Call `predicate` until it returns a truthy value; fail naming `what` and the last value (or error) seen."""
    end = time.monotonic() + deadline_s
    last: object = None
    while time.monotonic() < end:
        try:
            last = predicate()
        except redis.RedisError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(POLL_INTERVAL_S)
    raise AssertionError(f"timed out after {deadline_s:.1f}s waiting for {what}; last seen: {last!r}")


class RedisProcess:
    """One redis-server (or sentinel) process on a fixed port; it can be killed and started again on that port."""

    def __init__(self, workdir: Path, args: list[str]) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: apt-get install redis-server")
        self.port = free_port()
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "redis.log"
        self._argv = [binary, *args, "--port", str(self.port), "--bind", HOST, "--dir", str(workdir)]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}"

    def start(self) -> None:
        """Start the process and wait until it accepts connections."""
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(self._argv, stdout=log, stderr=subprocess.STDOUT)
        poll(self._accepting, f"{self._argv[1:]} on port {self.port}")

    def kill(self) -> None:
        """Kill the process (no shutdown, no save) and wait until it is gone."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(STOP_DEADLINE_S)
        self._process = None

    def client(self, db: int = 0, password: str | None = None) -> redis.Redis:
        """A plain redis-py client straight to this process (no sentinel, no retries); close it after use."""
        return redis.Redis(host=HOST, port=self.port, db=db, password=password, retry=None)

    def _accepting(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise AssertionError(f"redis-server exited with {self._process.returncode}:\n{self.log.read_text()}")
        return port_open(HOST, self.port)


@contextmanager
def redis_server(workdir: Path, *args: str) -> Iterator[RedisProcess]:
    """A started redis-server without persistence; extra `args` are passed to it (e.g. ``--requirepass``)."""
    server = RedisProcess(workdir, ["--save", "", "--appendonly", "no", "--daemonize", "no", *args])
    try:
        server.start()
        yield server
    finally:
        server.kill()


@contextmanager
def sentinel_for(
    workdir: Path,
    master: RedisProcess,
    master_password: str | None = None,
    password: str | None = None,
    down_after_ms: int | None = None,
) -> Iterator[RedisProcess]:
    """A started sentinel (quorum 1) monitoring `master` as ``SERVICE_NAME``, which it already reports as up.

    `master_password` is the master's ``requirepass``; `password` the sentinel's own; `down_after_ms` how long the
    master must be unreachable before the sentinel fails it over (Redis's default is 30 s).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "sentinel.conf"  # the sentinel rewrites it, so it lives in a directory of its own
    lines = ["sentinel resolve-hostnames no", f"sentinel monitor {SERVICE_NAME} {HOST} {master.port} 1"]
    if master_password is not None:
        lines.append(f"sentinel auth-pass {SERVICE_NAME} {master_password}")
    if password is not None:
        lines.append(f"requirepass {password}")
    if down_after_ms is not None:
        lines.append(f"sentinel down-after-milliseconds {SERVICE_NAME} {down_after_ms}")
    config.write_text("\n".join(lines) + "\n")
    sentinel = RedisProcess(workdir, [str(config), "--sentinel", "--daemonize", "no"])
    try:
        sentinel.start()
        with sentinel.client(password=password) as client:
            poll(lambda: _reports_master_up(client, master.port), f"the sentinel to report port {master.port} up")
        yield sentinel
    finally:
        sentinel.kill()


def _reports_master_up(client: redis.Redis, port: int) -> bool:
    # The checks redis-py makes before it trusts a sentinel's answer.
    state = client.sentinel_master(SERVICE_NAME)
    return bool(state["port"] == port and state["is_master"] and not state["is_sdown"] and not state["is_odown"])
