"""The child processes of `flyte-celery dev`: started in process groups of their own, their output relayed line by
line with their name in front, stopped with a signal, a bounded wait and then SIGKILL to the whole group.

A process group of its own keeps the terminal's Ctrl-C away from the children, so the command decides the order in
which they stop; SIGKILL to the group also reaches what a child started (a worker's pool processes).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO, Final

POLL_S: Final = 0.05  # how often a wait looks at its processes and at the stop request
_OUTPUT_LOCK: Final = threading.Lock()


class StopRequest:
    """What SIGINT, SIGTERM and SIGHUP ask for: the first signal a clean stop, a second one to stop at once."""

    HANDLED: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.hurry = threading.Event()
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        for sig in self.HANDLED:
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]  # what signal.signal returned before
        self._previous.clear()

    def _handle(self, signum: int, frame: object) -> None:
        if self.stop.is_set():
            self.hurry.set()
            return
        self.signal_name = signal.Signals(signum).name
        self.stop.set()


class Child:
    """One child process; its output (stdout and stderr) goes to our stderr as `[name] line`."""

    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], ready_when: re.Pattern[str] | None = None
    ) -> None:
        self.name = name
        self.ready = threading.Event()
        self.process = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        self._relay = threading.Thread(
            target=_relay, args=(name, self.process.stdout, self.ready, ready_when), name=f"dev-{name}", daemon=True
        )
        self._relay.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill_group(self) -> None:
        """SIGKILL to every process left in the child's group (the child itself, or what it started)."""
        if self.alive() or group_alive(self.pid):
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.process.wait()

    def finish_output(self, timeout_s: float) -> None:
        self._relay.join(timeout_s)


def group_alive(pgid: int) -> bool:
    """Whether any process is left in process group `pgid` (a signal 0 reaches one)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_children(children: Sequence[Child], sig: int, timeout_s: float, hurry: threading.Event) -> list[Child]:
    """Send `sig` to every child, wait up to `timeout_s` (less if `hurry` is set) for all of them, then SIGKILL the
    groups of those still running and of the stragglers of those that ended. Returns the children that were killed."""
    for child in children:
        child.signal(sig)
    deadline = time.monotonic() + timeout_s
    while any(child.alive() for child in children) and time.monotonic() < deadline and not hurry.is_set():
        time.sleep(POLL_S)
    killed = [child for child in children if child.alive()]
    for child in children:
        child.kill_group()
    return killed


def say(line: str, *, err: bool = False) -> None:
    """One line on stdout (or stderr), never interleaved with a child's line."""
    stream = sys.stderr if err else sys.stdout
    with _OUTPUT_LOCK:
        stream.write(line + "\n")
        stream.flush()


def _relay(name: str, stream: IO[bytes], ready: threading.Event, ready_when: re.Pattern[str] | None) -> None:
    with stream:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            if line:
                say(f"[{name}] {line}", err=True)
            if ready_when is not None and ready_when.search(line):
                ready.set()
