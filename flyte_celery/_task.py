"""Task templates: what `@env.task` returns, and how calling one is routed.

Outside any run a call is a plain Python call. Inside a running task it becomes a child action submitted to the
run's controller (local, Celery or hybrid: the routing below is the same for all three).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar

from flyte_celery._cache import Cache, cache_from_request
from flyte_celery._context import current_frame
from flyte_celery._interface import NativeInterface
from flyte_celery._retry import RetryStrategy, retry_strategy_from
from flyte_celery._timeout import Timeout, timeout_from
from flyte_celery.errors import SyncTaskCallInAsyncContextError, TraceDoesNotAllowNestedTasksError

P = ParamSpec("P")
R = TypeVar("R")
DEFAULT_MAX_INLINE_IO_BYTES = 10 * 1024 * 1024
_NOT_OVERRIDABLE = frozenset({"name", "image", "docs", "interface", "func", "env_name"})


@dataclass(frozen=True, eq=False, kw_only=True)
class TaskTemplate(Generic[P, R]):
    """A task: a function plus its execution settings. Call it like the function it wraps.

    Attributes:
        name: Fully qualified name, `<environment>.<function>`.
        short_name: Display name (defaults to the function name).
        func: The wrapped function.
        interface: Typed inputs and outputs.
        cache: Normalised cache settings.
        retries: Normalised retry strategy.
        timeout: Normalised timeouts.
        queue: Celery queue of this task's actions (None: the environment's, then the run's default).
    """

    name: str
    short_name: str
    env_name: str
    func: Callable[P, R]
    interface: NativeInterface
    cache: Cache = field(default_factory=lambda: Cache("disable"))
    retries: RetryStrategy = field(default_factory=lambda: RetryStrategy(0))
    timeout: Timeout = field(default_factory=Timeout)
    queue: str | None = None
    interruptible: bool = False
    docs: str | None = None
    report: bool = False
    resources: Any = None
    image: Any = None
    secrets: Any = None
    env_vars: dict[str, str] = field(default_factory=dict)
    pod_template: Any = None
    reusable: Any = None
    plugin_config: Any = None
    max_inline_io_bytes: int = DEFAULT_MAX_INLINE_IO_BYTES
    links: tuple[Any, ...] = ()
    triggers: tuple[Any, ...] = ()
    entrypoint: bool = False
    produces_artifacts: bool = False

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.func)

    @property
    def __name__(self) -> str:
        return self.short_name

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        frame = current_frame()
        if frame is None:
            return self.func(*args, **kwargs)
        if frame.in_trace:
            raise TraceDoesNotAllowNestedTasksError(
                f"task {self.name!r} was called inside a @trace function; call tasks from the task instead"
            )
        if self.is_async:
            return frame.controller.submit(frame, self, args, kwargs)  # type: ignore[return-value]
        if _loop_running_here():
            raise SyncTaskCallInAsyncContextError(
                f"sync task {self.name!r} was called directly from async code, which would block the event loop; "
                f"use `await {self.short_name}.aio(...)`"
            )
        future = frame.controller.submit_sync(frame, self, args, kwargs)
        return future.result()  # type: ignore[no-any-return]

    async def aio(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Call the task from async code, whether it is async or sync; the result is awaited."""
        frame = current_frame()
        if frame is None:
            result: Any = self.func(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result
        if frame.in_trace:
            raise TraceDoesNotAllowNestedTasksError(f"task {self.name!r} was called inside a @trace function")
        return await frame.controller.submit(frame, self, args, kwargs)

    def forward(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function in-process, bypassing the controller (no action, no cache, no retries)."""
        return self.func(*args, **kwargs)

    def override(self, **changes: Any) -> TaskTemplate[P, R]:
        """A copy with some settings changed, e.g. `task.override(cache="disable", retries=3)(x)`.

        Raises:
            ValueError: On a setting that cannot be overridden (name, image, docs, interface) or is unknown.
        """
        blocked = sorted(set(changes) & _NOT_OVERRIDABLE)
        if blocked:
            raise ValueError(f"cannot override {', '.join(blocked)} of task {self.name!r}")
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown task setting(s) {', '.join(unknown)} for task {self.name!r}")
        if changes.get("reusable") == "off":
            changes["reusable"] = None
        return dataclasses.replace(self, **normalise_settings(changes))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class AsyncFunctionTaskTemplate(TaskTemplate[P, R]):
    """A task made from a function with `@env.task` (async or sync; sync ones block the caller)."""


def normalise_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Turn shorthand settings (`cache="auto"`, `retries=3`, `timeout=60`) into their normalised objects."""
    out = dict(settings)
    if "cache" in out:
        out["cache"] = cache_from_request(out["cache"])
    if "retries" in out:
        out["retries"] = retry_strategy_from(out["retries"])
    if "timeout" in out:
        out["timeout"] = timeout_from(out["timeout"])
    if "env_vars" in out:
        out["env_vars"] = dict(out["env_vars"] or {})
    for key in ("links", "triggers"):
        if key in out:
            value = out[key]
            out[key] = tuple(value) if isinstance(value, (list, tuple)) else (value,) if value else ()
    return out


def _loop_running_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
