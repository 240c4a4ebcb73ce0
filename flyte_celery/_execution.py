"""Running one action: cache lookup, attempts with retries and timeouts, error conversion, cache write.

Every mode runs action bodies through `execute_action`: the local controller for every action, Celery workers for
the actions they receive, the hybrid client for its root. Only where the body runs differs.
"""

from __future__ import annotations

import asyncio
import os
import time
import traceback
from types import TracebackType
from typing import Any, Final

from flyte_celery._action_call import ActionCall
from flyte_celery._cache.sealed import SealedCache
from flyte_celery._context import Frame, TaskContext, enter_frame, leave_frame
from flyte_celery._controllers.base import Controller
from flyte_celery._logging import system_logger
from flyte_celery._run_spec import RunSpec
from flyte_celery._signing import Authenticated
from flyte_celery._sync_bodies import run_in_thread
from flyte_celery._values import copy_value, dumps_value, loads_value
from flyte_celery.errors import (
    BaseRuntimeError,
    DeadlineExceededError,
    MaxRuntimeExceededError,
    NonRecoverableError,
    RuntimeUserError,
    TaskTimeoutError,
)
from flyte_celery.report import finish as finish_report

_PACKAGE_DIR: Final = os.path.dirname(__file__) + os.sep  # where the frames of flyte-celery's own code are
SERIALIZED_WAIT_TIMEOUT_S = 24 * 3600.0
SERIALIZED_RESERVATION_TTL_S = 60.0  # renewed every third of it while the owner runs


async def execute_action(call: ActionCall, run: RunSpec, controller: Controller, cache: SealedCache | None) -> Any:
    """Run `call` to a native result, reusing or filling the cache as the run allows.

    Raises:
        BaseRuntimeError: The action's failure, converted (a user exception `E` becomes `RuntimeUserError` with
            code "E" and the traceback text attached), after retries are exhausted.
    """
    key = call.cache_key
    if key is None or cache is None:
        if call.task.retries.max_attempts == 1 and call.task.timeout.deadline is None:
            return await run_attempt(call, run, controller, 0)  # the common case, one frame shallower
        return await run_attempts(call, run, controller)
    if call.read_cache:
        hit = await cached_output(cache, key, call)
        if hit is not None:
            return hit[0]
    owner = f"{run.name}/{call.action.name}"
    heartbeat: asyncio.Task[None] | None = None
    if call.task.cache.serialize and call.read_cache:
        while not await cache.reserve(key, owner, SERIALIZED_RESERVATION_TTL_S):
            waited = await cache.wait_for(key, SERIALIZED_WAIT_TIMEOUT_S, call.task.cache.max_age_delta)
            hit = _loaded(waited, call)
            if hit is not None:
                return hit[0]
            # Released without a result (the owner failed) or the owner vanished: try to take it over.
        heartbeat = asyncio.ensure_future(_keep_reserved(cache, key, owner))
    try:
        result = await run_attempts(call, run, controller)
        await cache.put(key, dumps_value(result, what=f"output of task {call.task.name!r}"))
        return result
    finally:
        if heartbeat is not None:
            heartbeat.cancel()
            await cache.release(key, owner)


async def _keep_reserved(cache: SealedCache, key: str, owner: str) -> None:
    """Renew a serialize reservation while its owner runs, however long that takes."""
    while True:
        await asyncio.sleep(SERIALIZED_RESERVATION_TTL_S / 3)
        try:
            await cache.reserve(key, owner, SERIALIZED_RESERVATION_TTL_S)
        except Exception as exc:  # a passing store error: the next beat tries again
            system_logger.warning("could not renew the cache reservation of %s: %s", key, exc)


async def cached_output(cache: SealedCache, key: str, call: ActionCall) -> tuple[Any] | None:
    """`(output,)` of `call` from its cache entry under `key`, if there is one young enough that loads."""
    return _loaded(await cache.get(key, call.task.cache.max_age_delta), call)


def _loaded(payload: Authenticated | None, call: ActionCall) -> tuple[Any] | None:
    """(value,) of an authentic cache payload; None for a miss, or for an entry that no longer loads."""
    if payload is None:
        return None  # never written, older than the task's max_age, or failed its authentication
    try:
        return (loads_value(payload),)
    except Exception as exc:
        # An entry that no longer loads (its class moved, say) is a miss, not a failure; the fresh result replaces it.
        system_logger.warning("cache entry for %s could not be loaded (%s); running the task", call.task.name, exc)
        return None


async def run_attempts(call: ActionCall, run: RunSpec, controller: Controller) -> Any:
    """Run `call` once plus its retries; a `NonRecoverableError` or a cancellation stops retrying."""
    strategy = call.task.retries
    deadline_s = call.task.timeout.deadline_s
    deadline_at = time.monotonic() + deadline_s if deadline_s else None
    attempt = 0
    while True:
        try:
            return await run_attempt(call, run, controller, attempt, deadline_at)
        except NonRecoverableError:
            raise
        except BaseRuntimeError as err:
            if attempt + 1 >= strategy.max_attempts or isinstance(err, DeadlineExceededError):
                raise
            delay = strategy.delay_before_attempt(attempt + 1)
            if deadline_at is not None and time.monotonic() + delay >= deadline_at:
                raise
            system_logger.info(
                "action %s of task %s failed (%s: %s); retry %d in %.2fs",
                call.action.name,
                call.task.name,
                err.code,
                err,
                attempt + 1,
                delay,
            )
            await asyncio.sleep(delay)
            attempt += 1


async def run_attempt(
    call: ActionCall, run: RunSpec, controller: Controller, attempt: int, deadline_at: float | None = None
) -> Any:
    """One attempt of `call` under its own frame; the result is a serialized copy, as a worker would return.

    The attempt is bounded by the task's `max_runtime` and by what is left of its `deadline` (`deadline_at`, on
    the monotonic clock), whichever ends first.
    """
    task = call.task
    context = call.context if attempt == 0 else call.context.replace(attempt_number=attempt)
    frame = Frame(task=context, run=run, controller=controller, task_name=task.name)
    limit = task.timeout.max_runtime_s
    by_deadline = False
    if deadline_at is not None:
        remaining = max(deadline_at - time.monotonic(), 0.0)
        if limit is None or remaining < limit:
            limit, by_deadline = remaining, True
    token = None
    try:
        inputs = copy_value(call.inputs, what=f"inputs of task {task.name!r}")
        token = enter_frame(frame)
        if task.is_async:
            body, interrupt = task.func(**inputs), None
        else:
            body, interrupt = run_in_thread(task.func, inputs)
        try:
            result = await (_bounded(body, limit, call, by_deadline) if limit is not None else body)
        except (TaskTimeoutError, asyncio.CancelledError):
            if interrupt is not None:
                interrupt()  # the sync body stops too, instead of running on unobserved
            raise
        # Converted by the declared output types first: a mismatch fails the attempt as RuntimeUserError("TypeError").
        return copy_value(task.interface.convert_outputs(result, task.name), what=f"output of task {task.name!r}")
    except BaseRuntimeError as err:
        raise _located(err, call) from None
    except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        converted = RuntimeUserError(type(exc).__name__, str(exc), traceback_text=user_traceback(exc))
        raise _located(converted, call) from exc
    finally:
        if token is not None:
            leave_frame(token)
        controller.finalize_parent_action(context.action.key)
        await _finish_report(context, task.report)


async def _finish_report(context: TaskContext, write: bool) -> None:
    """An attempt ended: write its report if the task declared `report=True`; a failure to write is logged."""
    try:
        await finish_report(context.action.key, context.output_path, write)
    except Exception as exc:  # the task's own outcome stands
        system_logger.warning("could not write the report of action %s: %s", context.action.name, exc)


def _located(err: BaseRuntimeError, call: ActionCall) -> BaseRuntimeError:
    # The innermost action that failed names itself; parents re-raising it keep that location.
    if err.action_name is None:
        err.with_context(run_name=call.action.run_name, action_name=call.action.name, task_name=call.task.name)
    if err.traceback_text is None:
        err.traceback_text = format_traceback(err)
    return err


def format_traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def user_traceback(exc: BaseException) -> str:
    """The traceback of an exception a task raised, from the task's own code on: the frames of flyte-celery that
    called the task are left out (all frames stay when the exception came from flyte-celery's own code)."""
    frames: TracebackType | None = exc.__traceback__
    while frames is not None and frames.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frames = frames.tb_next
    return "".join(traceback.format_exception(type(exc), exc, frames or exc.__traceback__))


async def _bounded(awaitable: Any, limit: float, call: ActionCall, by_deadline: bool) -> Any:
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=limit)
    if not done:
        task.cancel()
        where = f"task {call.task.name!r} (action {call.action.name})"
        if by_deadline:
            raise DeadlineExceededError(f"{where} exceeded its deadline of {call.task.timeout.deadline_s:g}s")
        raise MaxRuntimeExceededError(f"{where} exceeded its max runtime of {limit:g}s")
    return task.result()
