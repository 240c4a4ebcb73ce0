"""Celery task events for actions that finished after giving their pool slot back.

Celery sends `task-succeeded`/`task-failed` itself only for task bodies that end with their action; a body whose
action gave its slot back returned early (see `request`), so without these events Flower would show the action as
started forever. One dispatcher per process sends them, on one broker connection.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from celery import Celery

from flyte_celery._celery.outcome import Outcome

MAX_RESULT_REPR_CHARS = 500


class EndEvents:
    """Sends the end events of a process's hosted actions (from any thread)."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._dispatchers: dict[str, Any] = {}

    def send(self, hostname: str, task_id: str, outcome: Outcome, started: float) -> None:
        runtime = time.monotonic() - started
        with self._lock:
            dispatcher = self._dispatchers.get(hostname)
            if dispatcher is None:
                dispatcher = self._dispatchers[hostname] = self.app.events.Dispatcher(
                    self.app.connection_for_write(), hostname=hostname
                )
            if outcome.error is None:
                dispatcher.send("task-succeeded", uuid=task_id, result=short_repr(outcome.value), runtime=runtime)
            else:
                error = outcome.error
                dispatcher.send(
                    "task-failed",
                    uuid=task_id,
                    exception=_short(f"{type(error).__name__}({error.code!r}, {str(error)!r})"),
                    traceback=error.traceback_text or "",
                )

    def close(self) -> None:
        with self._lock:
            for dispatcher in self._dispatchers.values():
                dispatcher.close()
                dispatcher.connection.release()
            self._dispatchers.clear()


def short_repr(value: Any) -> str:
    """How Flower shows an action's output: its repr, cut short."""
    try:
        return _short(repr(value))
    except Exception as exc:  # a user's __repr__ that fails says nothing about the action
        return f"<{type(value).__name__}: repr failed: {exc}>"


def _short(text: str) -> str:
    return text if len(text) <= MAX_RESULT_REPR_CHARS else text[: MAX_RESULT_REPR_CHARS - 3] + "..."
