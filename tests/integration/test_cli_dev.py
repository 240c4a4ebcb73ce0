"""`flyte-celery dev` starts a local cluster a client can use, and Ctrl-C (or SIGTERM) stops every process of it."""

from __future__ import annotations

import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests._redis_servers import free_port
from tests._services import POLL_INTERVAL_S, wait_until
from tests._workers import REPO_ROOT

CLI = str(Path(sys.executable).with_name("flyte-celery"))
PROGRAM = REPO_ROOT / "tests" / "integration" / "programs" / "dev_cluster.py"
UP_LINE = "Ctrl-C stops it"
DEV_START_DEADLINE_S = 90.0
DEV_STOP_DEADLINE_S = 60.0
RUN_DEADLINE_S = 60.0
FAILURE_DEADLINE_S = 30.0
GONE_DEADLINE_S = 10.0  # a process SIGKILLed with its group is gone a moment after the command ends


@dataclass
class Dev:
    """A running `flyte-celery dev` and where its output goes."""

    process: subprocess.Popen[bytes]
    out: Path
    err: Path

    def output(self) -> str:
        return f"--- stdout\n{self.out.read_text()}\n--- stderr (end)\n{self.err.read_text()[-4000:]}"

    def wait_up(self) -> dict[str, str]:
        """Wait until the cluster is up; return the variables it tells a client to export."""

        def up() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"dev exited with {self.process.returncode}:\n{self.output()}")
            return UP_LINE in self.out.read_text()

        wait_until(up, DEV_START_DEADLINE_S, "flyte-celery dev to be up")
        exports = {}
        for line in self.out.read_text().splitlines():
            if line.startswith("export "):
                name, _, value = shlex.split(line, comments=True)[1].partition("=")
                exports[name] = value
        return exports

    def printed_pids(self) -> set[int]:
        line = next(ln for ln in self.out.read_text().splitlines() if ln.startswith("pids: "))
        return {int(pid) for pid in line.removeprefix("pids: ").split()}

    def stop(self, sig: signal.Signals) -> int:
        os.killpg(self.process.pid, sig)  # as a terminal's Ctrl-C does: to the foreground process group
        try:
            return self.process.wait(timeout=DEV_STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"dev still running {DEV_STOP_DEADLINE_S}s after {sig.name}:\n{self.output()}"
            ) from None


@contextmanager
def dev_cluster(tmp_path: Path, args: list[str], env: dict[str, str]) -> Iterator[tuple[Dev, dict[int, int]]]:
    """Start `flyte-celery dev` in a session of its own; yields it and a record of its descendants (pid: start time),
    which the test fills while it runs. Whatever is left at the end is killed."""
    out, err = tmp_path / "dev.out", tmp_path / "dev.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [CLI, "dev", *args], stdout=stdout, stderr=stderr, env=env, cwd=tmp_path, start_new_session=True
        )
    seen: dict[int, int] = {}
    try:
        yield Dev(process, out, err), seen
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=DEV_STOP_DEADLINE_S)
        for pid, started in seen.items():
            if _alive(pid, started):
                os.kill(pid, signal.SIGKILL)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("FLYTE_CELERY_")}
    return {**env, **extra}


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, ...), or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rpartition(")")[2].split()


def _descendants(root: int) -> dict[int, int]:
    """Every live process under `root`, by its parent chain: pid -> start time (clock ticks since boot)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
            starts[int(entry.name)] = int(fields[19])
    found: dict[int, int] = {}
    pending = list(children.get(root, []))
    while pending:
        pid = pending.pop()
        found[pid] = starts[pid]
        pending += children.get(pid, [])
    return found


def _alive(pid: int, started: int) -> bool:
    fields = _stat(pid)
    return fields is not None and int(fields[19]) == started and fields[0] != "Z"


def _assert_none_left(seen: dict[int, int]) -> None:
    """Every process seen under dev is gone (checked before `dev_cluster` cleans up, which would kill the rest)."""
    assert seen
    deadline = time.monotonic() + GONE_DEADLINE_S
    while (left := _still_running(seen)) and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL_S)
    assert not left, f"still running after dev ended: {left}"


def _still_running(seen: dict[int, int]) -> dict[int, str]:
    left = {}
    for pid, started in seen.items():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if _alive(pid, started):
            left[pid] = command
    return left


def _run_client(exports: dict[str, str], tmp_path: Path) -> str:
    """Runs the program remotely from another process with only the printed environment; returns its output."""
    client = subprocess.run(
        [CLI, "run", "--follow", str(PROGRAM), "sum_of_squares", "--n", "5"],
        env=_clean_env(**exports),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=RUN_DEADLINE_S,
    )
    assert client.returncode == 0, client.stdout + client.stderr
    return client.stdout


def test_dev_with_a_private_redis_runs_remote_runs_and_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"broker:\n  url: redis://127.0.0.1:{free_port()}/0\n")  # nothing listens there
    queue = f"dev-{secrets.token_hex(3)}"
    args = ["--workers", "2", "-c", "1", "-Q", queue, "--flower-port", str(free_port())]
    with dev_cluster(tmp_path, args, _clean_env(FLYTE_CELERY_CONFIG=str(config))) as (dev, seen):
        exports = dev.wait_up()
        seen.update(_descendants(dev.process.pid))
        assert exports["FLYTE_CELERY_RUN_MODE"] == "remote"
        assert exports["FLYTE_CELERY_RUN_QUEUE"] == queue
        assert exports["FLYTE_CELERY_CONFIG"] == str(config)
        assert re.fullmatch(r"[0-9a-f]{64}", exports["FLYTE_CELERY_SECURITY_SIGNING_KEY"])
        private = exports["FLYTE_CELERY_REDIS_URL"]
        assert re.fullmatch(r"redis://:[0-9a-f]{32}@127\.0\.0\.1:\d+/0", private), private
        assert exports["FLYTE_CELERY_BROKER_URL"] == private
        data_dir = Path(re.findall(r"files in (\S+)\)", dev.out.read_text())[0])
        assert data_dir.is_dir()
        # redis-server, two workers each with one pool process, Flower
        assert len(seen) >= 6, seen
        assert dev.printed_pids() <= set(seen)
        with urllib.request.urlopen(exports["FLYTE_CELERY_FLOWER_URL"] + "/healthcheck", timeout=10) as response:
            assert response.read() == b"OK"

        output = _run_client(exports, tmp_path)
        seen.update(_descendants(dev.process.pid))
        match = re.search(r"o0='30 on pid (\d+)'", output)
        assert match, output
        assert int(match[1]) in seen  # a pool process of one of the dev workers ran it

        assert dev.stop(signal.SIGINT) in (0, 130), dev.output()
        assert "SIGINT: stopping the cluster" in dev.output()
        _assert_none_left(seen)
        assert not data_dir.exists()


def test_dev_uses_the_configured_redis_when_it_answers_and_sigterm_stops_it(redis_url: str, tmp_path: Path) -> None:
    queue = f"dev-{secrets.token_hex(3)}"
    env = _clean_env(FLYTE_CELERY_BROKER_URL=redis_url, FLYTE_CELERY_SECURITY_SIGNING_KEY="configured-dev-test-key")
    with dev_cluster(tmp_path, ["-c", "1", "-Q", queue, "--no-flower"], env) as (dev, seen):
        exports = dev.wait_up()
        seen.update(_descendants(dev.process.pid))
        assert exports["FLYTE_CELERY_BROKER_URL"] == redis_url  # no password in it, so it is shown
        assert "FLYTE_CELERY_SECURITY_SIGNING_KEY" not in exports  # a configured key is never printed
        assert "configured-dev-test-key" not in dev.output()
        assert "FLYTE_CELERY_FLOWER_URL" not in exports
        commands = {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in seen}
        assert not [pid for pid, command in commands.items() if b"redis-server" in command], commands

        client_env = {**exports, "FLYTE_CELERY_SECURITY_SIGNING_KEY": "configured-dev-test-key"}
        assert "o0='30 on pid" in _run_client(client_env, tmp_path)

        assert dev.stop(signal.SIGTERM) == 0, dev.output()
        _assert_none_left(seen)


def test_dev_without_redis_and_without_redis_server_says_what_to_do(tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    broker = f"redis://:hidden-password@127.0.0.1:{free_port()}/0"
    env = _clean_env(FLYTE_CELERY_BROKER_URL=broker, PATH=str(empty_bin))
    result = subprocess.run(
        [CLI, "dev"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=FAILURE_DEADLINE_S
    )
    assert result.returncode != 0
    assert "does not answer" in result.stderr
    assert "redis-server is not on PATH" in result.stderr
    assert "apt-get install redis-server" in result.stderr
    assert "FLYTE_CELERY_REDIS_URL" in result.stderr
    assert "hidden-password" not in result.stdout + result.stderr
    assert "pids:" not in result.stdout  # nothing was started
