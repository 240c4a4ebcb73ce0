"""Sync task bodies: each runs on a thread of its own, and can be interrupted when it times out or is aborted.

Never a bounded pool: a sync parent blocks its thread while its children run, so a pool could fill with waiting
parents. A thread cannot be killed; an interrupted body gets `SyncBodyInterrupted` raised inside it at its next
Python instruction (code blocked in C, e.g. a long `time.sleep`, notices when the call returns).
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import threading
from collections.abc import Callable
from typing import Any


class SyncBodyInterrupted(BaseException):
    """Raised inside a sync task body whose action timed out or was aborted (a BaseException, so that a broad
    `except Exception` in user code does not swallow it)."""


def run_in_thread(func: Callable[..., Any], inputs: dict[str, Any]) -> tuple[asyncio.Future[Any], Callable[[], None]]:
    """Start `func(**inputs)` on a new thread with the caller's context; returns its future and an interrupter."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()
    finished = threading.Event()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def body() -> None:
        value: Any = None
        error: BaseException | None = None
        try:
            value = context.run(func, **inputs)
        except BaseException as exc:
            error = exc
        finally:
            finished.set()
        if loop.is_closed():
            return  # a body that outlived its run: nobody is waiting any more
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:
            pass  # the loop closed between the check and the call

    thread = threading.Thread(target=body, name=f"flyte-celery-sync-{func.__name__}", daemon=True)
    thread.start()

    def interrupt() -> None:
        if not finished.is_set() and thread.ident is not None:
            _raise_in_thread(thread.ident, SyncBodyInterrupted)

    return future, interrupt


def _raise_in_thread(ident: int, exc_type: type[BaseException]) -> None:
    set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
    affected = set_async_exc(ctypes.c_ulong(ident), ctypes.py_object(exc_type))
    if affected > 1:  # never expected; undo rather than hit other threads
        set_async_exc(ctypes.c_ulong(ident), None)
