"""The worker-side request of our entry task, and how an action's end reaches Celery and Flower.

- An action that gave its pool slot back ends its Celery task early: its task body returns `HOSTED` (cheaper than
  raising `Ignore`, which makes Celery format and log a traceback for every message). The message is acknowledged
  as for any finished task, but no `task-succeeded` event is sent, since the action has not ended; it sends its
  own end event later (`events.EndEvents`), so Flower shows it as started until then.
- An action that failed while its body held the slot makes the body raise `ActionFailed`: Celery records a
  FAILURE, and its `task-failed` event carries the action's error and the traceback of the user's code, not the
  task body's.
"""

from __future__ import annotations

from typing import Any, Final

from celery.worker.request import Request

HOSTED: Final = "hosted: runs on without its pool slot"


class ActionFailed(Exception):
    """Raised by the task body of an action that failed: `summary` names its error, `traceback_text` is its own."""

    def __init__(self, summary: str, traceback_text: str = "") -> None:
        super().__init__(summary)
        self.traceback_text = traceback_text

    def __reduce__(self) -> tuple[Any, ...]:
        return (ActionFailed, (self.args[0], self.traceback_text))


class ActionRequest(Request):  # type: ignore[misc]
    def send_event(self, type: str, **fields: Any) -> None:
        if type == "task-succeeded" and fields.get("result") == HOSTED:
            return
        super().send_event(type, **fields)

    def on_failure(self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False) -> None:
        failure = getattr(exc_info.exception, "exc", exc_info.exception)  # unwrapped from ExceptionWithTraceback
        if isinstance(failure, ActionFailed) and failure.traceback_text:
            exc_info.traceback = failure.traceback_text  # the user's traceback, for Flower
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)
