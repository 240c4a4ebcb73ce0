"""Celery task events for parents that finished after giving their slot back.

Celery sends `task-succeeded`/`task-failed` itself only for task bodies that return; a suspended parent's body
ended with `Ignore`, so without these events Flower would show it as started forever.
"""

from __future__ import annotations

import time

from celery import Celery

from flyte_celery._celery.outcome import Outcome

MAX_RESULT_REPR_CHARS = 500


def send_finished_event(app: Celery, hostname: str, task_id: str, outcome: Outcome, started: float) -> None:
    with app.events.default_dispatcher(hostname=hostname) as dispatcher:
        runtime = time.monotonic() - started
        if outcome.error is None:
            dispatcher.send("task-succeeded", uuid=task_id, result=_short(repr(outcome.value)), runtime=runtime)
        else:
            error = outcome.error
            dispatcher.send(
                "task-failed",
                uuid=task_id,
                exception=_short(f"{type(error).__name__}({error.code!r}, {str(error)!r})"),
                traceback=error.traceback_text or "",
            )


def _short(text: str) -> str:
    return text if len(text) <= MAX_RESULT_REPR_CHARS else text[: MAX_RESULT_REPR_CHARS - 3] + "..."
