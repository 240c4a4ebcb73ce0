"""Which actions a pool process hosts, and when the Celery task body gives the pool slot back.

A pool process runs one Celery task body at a time; the body hands its action to the process's event loop and
waits on the action's `Slot`. The slot is held while the action computes and given back while it waits:

- An async action gives it back as soon as the event loop goes idle (nothing ready to run: every hosted action is
  waiting on a child, a sleep, a socket, a lock): the loop's selector says so right before it blocks. An async
  action that computes keeps the loop busy, so it keeps its slot and the next message goes to another process.
- A sync body runs on a thread of its own while the loop sits idle, so its slot is pinned; it is given back only
  while the body waits on a child (which also holds for async actions: `release_current_slot`).
- Nothing is given back before the action's lease is taken: the body's return acknowledges the message.

`HostedActions` counts what the process hosts. At `max_hosted` actions that are not waiting on children, the body
keeps its slot until the count drops, so the process takes no more messages and the broker hands them to other
processes and workers. Actions waiting on children do not count: a bound on them could keep every process from
running the very children they wait for.
"""

from __future__ import annotations

import selectors
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any


class Slot:
    """The pool slot held by one action's task body (loop thread and pool thread both touch it, under `lock`)."""

    def __init__(self, hosted: HostedActions) -> None:
        self.hosted = hosted
        self._event = threading.Event()
        self.released = False
        self.finished = False
        self.releasable = False  # set once the action's lease is held
        self.pinned = False  # a sync body: the loop's idleness says nothing about it
        self.waiting_on_children = 0

    def allow_release(self, *, pinned: bool) -> None:
        """The action's lease is held: from now on its slot may be given back (`pinned`: only to wait on a child)."""
        with self.hosted.lock:
            self.releasable, self.pinned = True, pinned

    def keep(self) -> None:
        """The action's code has ended: its outcome is recorded with the slot held (unless already given back)."""
        with self.hosted.lock:
            self.releasable = False

    def release(self) -> None:
        """Give the slot back: the action waits on a child."""
        with self.hosted.lock:
            if not self.releasable or self.finished or self.released:
                return
            self.released = True
        self._event.set()

    def release_if_unpinned(self) -> None:
        """Give the slot back if the action may go on without it: an async action whose loop went idle."""
        if self.releasable and not self.pinned and not self.released and not self.finished:
            self.release()

    def finish(self) -> None:
        self.finished = True
        self._event.set()
        self.hosted.remove(self)

    def wait(self) -> None:
        """Block the pool thread until the action has finished or given its slot back."""
        self._event.wait()

    @contextmanager
    def waiting_on_a_child(self) -> Iterator[None]:
        self.hosted.changed(self, +1)
        try:
            yield
        finally:
            self.hosted.changed(self, -1)


class HostedActions:
    """The actions a pool process hosts; the one whose task body holds the slot is `current`."""

    def __init__(self, max_hosted: int) -> None:
        self.max_hosted = max_hosted
        self.lock = threading.Condition()
        self._slots: set[Slot] = set()
        self.current: Slot | None = None

    def admit(self) -> Slot:
        """A slot for an action the body thread is about to start (it becomes the current one)."""
        slot = Slot(self)
        with self.lock:
            self._slots.add(slot)
            self.current = slot
        return slot

    def remove(self, slot: Slot) -> None:
        with self.lock:
            self._slots.discard(slot)
            if self.current is slot:
                self.current = None
            self.lock.notify_all()

    def changed(self, slot: Slot, waits: int) -> None:
        with self.lock:
            slot.waiting_on_children += waits
            self.lock.notify_all()

    def __len__(self) -> int:
        return len(self._slots)

    def busy(self) -> int:
        """Hosted actions that are not waiting on children: running, sleeping, waiting on I/O."""
        return sum(1 for slot in self._slots if slot.waiting_on_children == 0)

    def wait_below_bound(self) -> None:
        """Block the pool thread while the process hosts `max_hosted` busy actions (back-pressure)."""
        with self.lock:
            self.current = None
            self.lock.wait_for(lambda: self.busy() < self.max_hosted)

    def on_loop_idle(self) -> None:
        """Called by the loop thread right before its selector blocks: the current action may wait without its slot."""
        slot = self.current
        if slot is not None:
            slot.release_if_unpinned()


class IdleSignallingSelector(selectors.DefaultSelector):
    """The default selector, calling `on_idle` whenever the event loop is about to block (nothing ready to run)."""

    def __init__(self, on_idle: Callable[[], None]) -> None:
        super().__init__()
        self._on_idle = on_idle

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        if timeout is None or timeout > 0:
            self._on_idle()
        return super().select(timeout)


_current: ContextVar[Slot | None] = ContextVar("flyte_celery_slot", default=None)


@contextmanager
def slot_held(slot: Slot) -> Iterator[None]:
    token = _current.set(slot)
    try:
        yield
    finally:
        _current.reset(token)


def release_current_slot() -> None:
    """The running action waits on a child: give its slot back."""
    slot = _current.get()
    if slot is not None:
        slot.release()


@contextmanager
def waiting_on_a_child() -> Iterator[None]:
    """Count the running action as waiting on a child for the duration (it does not count against the bound)."""
    slot = _current.get()
    if slot is None:
        yield
        return
    with slot.waiting_on_a_child():
        yield
