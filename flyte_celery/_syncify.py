"""Blocking wrappers with an `.aio` twin, as Flyte's `syncify`: `run(...)` blocks, `await run.aio(...)` does not."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Generic, ParamSpec, TypeVar, overload

P = ParamSpec("P")
R = TypeVar("R")


def run_blocking(coro: Coroutine[Any, Any, R]) -> R:
    """Run `coro` to completion from synchronous code.

    With no event loop running in this thread it gets a fresh one; inside a running loop (a notebook, an async
    framework, an async task body) it runs on a helper thread, in a copy of the caller's context, so the caller's
    loop is never re-entered and the call still sees the task it was made from.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        running = False
    else:
        running = True
    if not running:
        # Outside the except block, so a failure's traceback does not drag "no running event loop" along.
        return asyncio.run(coro)
    outcome: dict[str, Any] = {}
    context = contextvars.copy_context()  # the caller's: a task calling `flyte_celery.report.log(...)` stays in it

    def target() -> None:
        try:
            outcome["value"] = context.run(asyncio.run, coro)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="flyte-celery-blocking-call", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


class Syncified(Generic[P, R]):
    """A coroutine function callable plainly (blocking) or as `await f.aio(...)`."""

    def __init__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> None:
        self._fn = fn
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return run_blocking(self._fn(*args, **kwargs))

    def aio(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        return self._fn(*args, **kwargs)

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> Syncified[P, R]: ...
    @overload
    def __get__(self, obj: object, objtype: type | None = None) -> Syncified[Any, R]: ...
    def __get__(self, obj: object | None, objtype: type | None = None) -> Syncified[Any, R]:
        if obj is None:
            return self
        return Syncified(functools.partial(self._fn, obj))  # type: ignore[arg-type]


def syncify(fn: Callable[P, Coroutine[Any, Any, R]]) -> Syncified[P, R]:
    return Syncified(fn)
