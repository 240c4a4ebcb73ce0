"""Celery task events for actions that finished after giving their pool slot back.

Celery sends `task-succeeded`/`task-failed` itself only for task bodies that end with their action; a body whose
action gave its slot back returned early (see `request`), so without these events Flower would show the action as
started forever. One dispatcher per process and host sends them, on one broker connection, batched.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, Generic, TypeVar

from celery import Celery

from flyte_celery._celery import reprs
from flyte_celery._celery.outcome import Outcome
from flyte_celery._logging import system_logger

MAX_RESULT_REPR_CHARS = 500
TASK_EVENTS: Final = "task"  # the group of Celery's task-* events
EVENTS_PER_MESSAGE: Final = 100  # task events sent together in one event message (a list body), at most
EVENT_FLUSH_DELAY_S: Final = 0.05  # the most a task event waits in a process before it is published

T = TypeVar("T")


class DelayedEvents(Generic[T]):
    """Events queued on an event loop's thread and handed, together, to `send` on an executor thread at most
    `EVENT_FLUSH_DELAY_S` after the first of them (the delay the worker's consumer gives its own task events).

    Sent at once, every event of a sequential chain of actions cost a broker publish and a thread hop on the path
    of the chain: a quarter of each child round trip's CPU on a 2-core machine. Flower shows an action's state
    at most that much later.
    """

    def __init__(self, send: Callable[[list[T]], None], what: str) -> None:
        self._send = send
        self._what = what
        self._queued: list[T] = []

    def put(self, events: Sequence[T]) -> None:
        """Queue events (on the loop's thread); they are sent within `EVENT_FLUSH_DELAY_S`."""
        if not events:
            return
        first = not self._queued
        self._queued.extend(events)
        if first:
            loop = asyncio.get_running_loop()
            loop.call_later(EVENT_FLUSH_DELAY_S, self._hand_over, loop)

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self.take()
        if batch:
            loop.run_in_executor(None, self.send_logging_failures, batch)

    def take(self) -> list[T]:
        """The events still queued, now no longer queued (to send them at a shutdown)."""
        batch, self._queued = self._queued, []
        return batch

    def send_logging_failures(self, batch: list[T]) -> None:
        try:
            self._send(batch)
        except Exception as exc:  # Flower misses these states; the actions themselves are not affected
            system_logger.warning("could not send %d %s: %s", len(batch), self._what, exc)


class EndEvents:
    """Sends the end events of a process's hosted actions: those queued within `EVENT_FLUSH_DELAY_S` go out
    together, from an executor thread, as one Celery event message per host and `EVENTS_PER_MESSAGE` events (a list
    body, the way Celery's own worker batches its task events; Flower and every Celery event receiver read it)."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._dispatchers: dict[str, Any] = {}
        # (hostname, event type, fields) each
        self._pending: DelayedEvents[tuple[str, str, dict[str, Any]]] = DelayedEvents(self.send, "end events")

    def queue(self, hostname: str, task_id: str, outcome: Outcome, started: float) -> None:
        """Queue the end event of an action (on the event loop's thread)."""
        self._pending.put([(hostname, *end_event(task_id, outcome, time.monotonic() - started))])

    def send(self, batch: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Send events now, from any thread: (hostname, event type, fields) each."""
        with self._lock:
            hosts = {hostname for hostname, _, _ in batch}
            for hostname, kind, fields in batch:
                self._dispatcher(hostname).send(kind, **fields)
            for hostname in hosts:
                self._dispatcher(hostname).flush()

    def _dispatcher(self, hostname: str) -> Any:
        dispatcher = self._dispatchers.get(hostname)
        if dispatcher is None:
            dispatcher = self._dispatchers[hostname] = batching_dispatcher(self.app, hostname)
        return dispatcher

    def close(self) -> None:
        """Send what is still queued, then close the connections."""
        batch = self._pending.take()
        if batch:
            self._pending.send_logging_failures(batch)
        with self._lock:
            for dispatcher in self._dispatchers.values():
                dispatcher.close()
                dispatcher.connection.release()
            self._dispatchers.clear()


def batching_dispatcher(app: Celery, hostname: str | None = None) -> Any:
    """A Celery event dispatcher on a connection of its own that buffers task events until `flush()` (or until
    `EVENTS_PER_MESSAGE` are buffered), then sends them as one event message with a list body."""
    return app.events.Dispatcher(
        app.connection_for_write(),
        hostname=hostname,
        enabled=True,
        buffer_group=[TASK_EVENTS],
        buffer_limit=EVENTS_PER_MESSAGE,
    )


def end_event(task_id: str, outcome: Outcome, runtime: float) -> tuple[str, dict[str, Any]]:
    """The `task-succeeded` or `task-failed` event of an action, with the fields Celery's own have."""
    if outcome.error is None:
        return "task-succeeded", {"uuid": task_id, "result": short_repr(outcome.value), "runtime": runtime}
    error = outcome.error
    exception = reprs.cut(f"{type(error).__name__}({error.code!r}, {str(error)!r})", MAX_RESULT_REPR_CHARS)
    return "task-failed", {"uuid": task_id, "exception": exception, "traceback": error.traceback_text or ""}


def short_repr(value: Any) -> str:
    """How Flower shows an action's output (see `reprs`)."""
    return reprs.short_repr(value, MAX_RESULT_REPR_CHARS)
