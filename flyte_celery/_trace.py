"""`@trace`: run a helper function as a named sub-step of the task calling it (sync, async or generator)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar, cast

from flyte_celery._cache import inputs_hash
from flyte_celery._context import ActionID, Frame, current_frame, frame_installed

F = TypeVar("F", bound=Callable[..., Any])


def trace(func: F) -> F:
    """Mark `func` as a traced step: inside a task it runs as its own pseudo-action (`ctx().action` names it)
    and may not call tasks (`TraceDoesNotAllowNestedTasksError`); outside a task it is a plain call.

    On a Celery worker the output of an async traced function is recorded: when its parent is replayed (taken over
    from a worker that stopped), the trace returns the recorded output instead of running again, as in Flyte.
    """
    signature = inspect.signature(func)

    def traced_frame(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Frame | None:
        frame = current_frame()
        if frame is None:
            return None
        return dataclasses.replace(
            frame, task=frame.task.replace(action=_trace_action(frame, func, signature, args, kwargs)), in_trace=True
        )

    if inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        async def async_gen_wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            frame = traced_frame(args, kwargs)
            gen = func(*args, **kwargs)
            if frame is None:
                async for item in gen:
                    yield item
                return
            while True:
                with frame_installed(frame):
                    try:
                        item = await gen.__anext__()
                    except StopAsyncIteration:
                        return
                yield item

        return cast(F, async_gen_wrapper)

    if inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            frame = traced_frame(args, kwargs)
            gen = func(*args, **kwargs)
            if frame is None:
                yield from gen
                return
            while True:
                with frame_installed(frame):
                    try:
                        item = next(gen)
                    except StopIteration:
                        return
                yield item

        return cast(F, gen_wrapper)

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            frame = traced_frame(args, kwargs)
            if frame is None:
                return await func(*args, **kwargs)
            with frame_installed(frame):
                recorded = await frame.controller.recorded_trace(frame)
                if recorded is not None:
                    return recorded[0]
                output = await func(*args, **kwargs)
                await frame.controller.record_trace(frame, output)
                return output

        return cast(F, async_wrapper)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        frame = traced_frame(args, kwargs)
        if frame is None:
            return func(*args, **kwargs)
        with frame_installed(frame):
            return func(*args, **kwargs)

    return cast(F, wrapper)


def _trace_action(
    frame: Frame, func: Callable[..., Any], signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> ActionID:
    parent = frame.task.task_action or frame.task.action
    group = frame.task.group_data.name if frame.task.group_data else None
    try:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        digest = inputs_hash(dict(bound.arguments), {})
    except Exception:
        digest = ""
    name = f"{func.__module__}.{func.__qualname__}"
    seq = frame.controller.sequencer.next_seq(parent.key, f"trace:{name}:{digest}:{group or ''}")
    return parent.new_sub_action_from(task_call_seq=seq, task_hash=name, input_hash=digest, group=group)
