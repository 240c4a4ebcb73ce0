"""Pool slots: a parent running in a worker gives its slot back at its first wait on a child.

The Celery task body (pool thread) waits on the `Slot` of the action it started; the action's coroutine (loop
thread) marks it released when it first waits on a child, or finished when it ends, whichever comes first.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class Slot:
    """The pool slot held by one action's task body."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.released = False
        self.finished = False

    def release(self) -> None:
        if not self.finished:
            self.released = True
        self._event.set()

    def finish(self) -> None:
        self.finished = True
        self._event.set()

    def wait(self) -> None:
        self._event.wait()


_current: ContextVar[Slot | None] = ContextVar("flyte_celery_slot", default=None)


@contextmanager
def slot_held(slot: Slot) -> Iterator[None]:
    token = _current.set(slot)
    try:
        yield
    finally:
        _current.reset(token)


def release_current_slot() -> None:
    slot = _current.get()
    if slot is not None:
        slot.release()
