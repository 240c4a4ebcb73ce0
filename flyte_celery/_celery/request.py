"""The worker-side request of our entry task: an action that gave its pool slot back ends its Celery task early.

Its task body returns `HOSTED` (cheaper than raising `Ignore`, which makes Celery format and log a traceback for
every message): the message is acknowledged as for any finished task, but no `task-succeeded` event is sent, since
the action has not ended. It runs on in the pool process's event loop, under its lease, and sends its own
`task-succeeded` or `task-failed` event when it ends (`events.send_finished_event`), so Flower shows it as started
until then.
"""

from __future__ import annotations

from typing import Any, Final

from celery.worker.request import Request

HOSTED: Final = "hosted: runs on without its pool slot"


class ActionRequest(Request):  # type: ignore[misc]
    def send_event(self, type: str, **fields: Any) -> None:
        if type == "task-succeeded" and fields.get("result") == HOSTED:
            return
        super().send_event(type, **fields)
