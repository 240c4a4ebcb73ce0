"""`map(task, *iterables)`: one child action per item, results in input order (sync generator, or `.aio`)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from flyte_celery._context import Frame, GroupData, current_frame, task_context_replaced
from flyte_celery._syncify import run_blocking
from flyte_celery._task import TaskTemplate
from flyte_celery.errors import BaseRuntimeError, SyncTaskCallInAsyncContextError


def _unwrap(func: Any) -> tuple[TaskTemplate[Any, Any], tuple[Any, ...], dict[str, Any]]:
    if isinstance(func, functools.partial):
        task, args, kwargs = _unwrap(func.func)
        return task, (*args, *func.args), {**kwargs, **func.keywords}
    if isinstance(func, TaskTemplate):
        return func, (), {}
    raise TypeError(f"map() expects a task or a functools.partial of a task, got {func!r}")


def _group_name(task: TaskTemplate[Any, Any], group_name: str | None) -> str:
    return f"{task.name}_{group_name or 'map'}"


class _Mapper:
    """`map(...)` is a generator for sync code; `map.aio(...)` an async generator for async tasks."""

    def __call__(
        self,
        func: TaskTemplate[Any, Any] | functools.partial[Any] | Callable[..., Any],
        *iterables: Iterable[Any],
        group_name: str | None = None,
        concurrency: int = 0,
        return_exceptions: bool = True,
    ) -> Iterator[Any]:
        """Call `func` once per item of the zipped `iterables`, at most `concurrency` at once (0: no limit).

        Yields results in input order; with `return_exceptions` (the default) a failed item yields its error
        instead of raising, else the first failure raises and the remaining calls are cancelled.
        """
        task, pre_args, pre_kwargs = _unwrap(func)
        _check_concurrency(concurrency)
        frame = current_frame()
        if frame is None:
            yield from _plain_calls(task, pre_args, pre_kwargs, iterables, return_exceptions)
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise SyncTaskCallInAsyncContextError("map() was called from async code; use `async for r in map.aio(...)`")
        grouped = dataclasses.replace(
            frame, task=frame.task.replace(group_data=GroupData(_group_name(task, group_name)))
        )
        items = list(zip(*iterables, strict=False))
        window = concurrency or len(items) or 1
        futures = [
            grouped.controller.submit_sync(grouped, task, (*pre_args, *item), dict(pre_kwargs))
            for item in items[:window]
        ]
        next_item = window
        try:
            for index in range(len(items)):
                try:
                    yield futures[index].result()
                except BaseRuntimeError as err:
                    if not return_exceptions:
                        raise
                    yield err
                if next_item < len(items):
                    item = items[next_item]
                    futures.append(grouped.controller.submit_sync(grouped, task, (*pre_args, *item), dict(pre_kwargs)))
                    next_item += 1
        finally:
            for future in futures:
                future.cancel()

    async def aio(
        self,
        func: TaskTemplate[Any, Any] | functools.partial[Any] | Callable[..., Any],
        *iterables: Iterable[Any],
        group_name: str | None = None,
        concurrency: int = 0,
        return_exceptions: bool = True,
    ) -> AsyncIterator[Any]:
        """The async form of `map(...)`: `async for result in flyte.map.aio(task, items): ...`."""
        task, pre_args, pre_kwargs = _unwrap(func)
        _check_concurrency(concurrency)
        frame = current_frame()
        if frame is None:
            for item in zip(*iterables, strict=False):
                try:
                    result = task.forward(*pre_args, *item, **pre_kwargs)
                    yield await result if inspect.isawaitable(result) else result
                except Exception as exc:
                    if not return_exceptions:
                        raise
                    yield exc
            return
        limit = asyncio.Semaphore(concurrency) if concurrency else None
        futures = _start_all(frame, task, pre_args, pre_kwargs, iterables, limit, _group_name(task, group_name))
        try:
            for future in futures:
                try:
                    yield await future
                except BaseRuntimeError as err:
                    if not return_exceptions:
                        raise
                    yield err
        finally:
            for future in futures:
                future.cancel()


def _start_all(
    frame: Frame,
    task: TaskTemplate[Any, Any],
    pre_args: tuple[Any, ...],
    pre_kwargs: dict[str, Any],
    iterables: tuple[Iterable[Any], ...],
    limit: asyncio.Semaphore | None,
    group: str,
) -> list[asyncio.Future[Any]]:
    async def one(item: tuple[Any, ...]) -> Any:
        if limit is None:
            return await task.aio(*pre_args, *item, **pre_kwargs)
        async with limit:
            return await task.aio(*pre_args, *item, **pre_kwargs)

    # Tasks copy the context when created, so each child is submitted from inside the group.
    with task_context_replaced(group_data=GroupData(group)):
        return [asyncio.ensure_future(one(item)) for item in zip(*iterables, strict=False)]


def _plain_calls(
    task: TaskTemplate[Any, Any],
    pre_args: tuple[Any, ...],
    pre_kwargs: dict[str, Any],
    iterables: tuple[Iterable[Any], ...],
    return_exceptions: bool,
) -> Iterator[Any]:
    for item in zip(*iterables, strict=False):
        try:
            result = task.forward(*pre_args, *item, **pre_kwargs)
            yield run_blocking(result) if inspect.iscoroutine(result) else result
        except Exception as exc:
            if not return_exceptions:
                raise
            yield exc


def _check_concurrency(concurrency: int) -> None:
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 0:
        raise ValueError(f"concurrency must be an int >= 0 (0: no limit), got {concurrency!r}")


map = _Mapper()
