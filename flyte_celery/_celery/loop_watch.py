"""Watches a pool process's event loop for steps that block it.

Every async action hosted in a process shares its one event loop: an async task body that computes (or calls a
blocking function) without awaiting stalls all the others, and their leases are renewed from another thread, so
nobody else would notice. A tick on the loop every `TICK_S` and a thread that checks it find such steps; when one
ends, a WARNING names the task that blocked and for how long, and says where CPU-heavy work belongs.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from types import FrameType
from typing import Final

from flyte_celery._celery.hosting import HostedActions
from flyte_celery._execution import run_attempt
from flyte_celery._logging import system_logger

TICK_S: Final = 0.1
LAG_WARNING_S: Final = 0.5  # a loop step longer than this is reported


class LoopWatch:
    """Reports steps of `loop` (run by `thread`) that block it for over `LAG_WARNING_S`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, thread: threading.Thread, hosted: HostedActions) -> None:
        self.loop = loop
        self.thread = thread
        self.hosted = hosted
        self._last_tick = time.monotonic()
        self._stop = threading.Event()
        loop.call_soon_threadsafe(self._tick)
        self._watcher = threading.Thread(target=self._watch, name="flyte-celery-loop-watch", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()

    def _tick(self) -> None:
        self._last_tick = time.monotonic()
        if not self._stop.is_set():
            self.loop.call_later(TICK_S, self._tick)

    def _watch(self) -> None:
        blocked_since: float | None = None
        culprit = "an async action"
        while not self._stop.wait(TICK_S):
            last_tick = self._last_tick
            lag = time.monotonic() - last_tick - TICK_S
            if lag > LAG_WARNING_S and blocked_since is None:
                blocked_since, culprit = last_tick + TICK_S, self._culprit()
            elif blocked_since is not None and last_tick > blocked_since:
                self._report(culprit, last_tick - blocked_since)
                blocked_since = None

    def _report(self, culprit: str, seconds: float) -> None:
        others = max(len(self.hosted) - 1, 0)
        system_logger.warning(
            "%s blocked this worker process's event loop for %.1fs (%d other hosted action(s) stalled meanwhile): "
            "an async task body must await, not compute; CPU-heavy work belongs in a sync task (def, not async "
            "def), which runs on a thread of its own and keeps its pool slot",
            culprit,
            seconds,
            others,
        )

    def _culprit(self) -> str:
        """Which action's code the loop thread is running: the `run_attempt` frame on its stack names it; else the
        innermost Python frame says where it is."""
        innermost: FrameType | None = sys._current_frames().get(self.thread.ident or -1)
        frame = innermost
        while frame is not None:
            if frame.f_code is run_attempt.__code__:
                call = frame.f_locals.get("call")
                action = getattr(call, "action", None)
                task = getattr(call, "task", None)
                if action is not None and task is not None:
                    return f"task {task.name!r} (action {action.name} of run {action.run_name})"
            frame = frame.f_back
        if innermost is None:
            return "an async action"
        code = innermost.f_code
        return f"code in {code.co_name} ({code.co_filename}:{innermost.f_lineno})"
