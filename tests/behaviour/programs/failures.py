"""Failing tasks: user errors, retries, non-recoverable errors, timeouts and bad calls."""

from __future__ import annotations

import asyncio
from typing import Any

import flyte_celery as flyte
from flyte_celery.errors import NonRecoverableError, RuntimeUserError, TaskTimeoutError
from tests.behaviour.programs._files import append_line, wait_for_file

env = flyte.TaskEnvironment("behaviour-failures")
FAST_RETRY = flyte.Backoff(0.01)
LONG_SLEEP_S = 30.0


class BehaviourError(Exception):
    """A user-defined exception type, to check that its name becomes the error code."""


def _attempt() -> int:
    ctx = flyte.ctx()
    assert ctx is not None
    return ctx.attempt_number


def _describe(err: BaseException) -> dict[str, Any]:
    return {
        "type": type(err).__name__,
        "is_user_error": isinstance(err, RuntimeUserError),
        "code": getattr(err, "code", None),
        "message": str(err),
        "traceback_text": getattr(err, "traceback_text", None) or "",
        "task_name": getattr(err, "task_name", None),
    }


@env.task
async def explode_with_value_error(n: int) -> int:
    raise ValueError(f"bad value {n}")


@env.task
async def explode_with_custom_error() -> int:
    raise BehaviourError("custom failure")


@env.task
async def catch_child_error(n: int) -> dict[str, Any]:
    try:
        await explode_with_value_error(n)
    except RuntimeUserError as err:
        return _describe(err)
    return {"type": None}


@env.task
async def parent_not_catching(n: int) -> int:
    return await explode_with_value_error(n) + 1


@env.task
async def grandparent_not_catching(n: int) -> int:
    return await parent_not_catching(n) + 1


@env.task(retries=1)
async def flaky_int_retries(fail_times: int, log: str) -> int:
    """Fails its first `fail_times` attempts; returns the attempt number that succeeded."""
    attempt = _attempt()
    append_line(log, str(attempt))
    if attempt < fail_times:
        raise ValueError(f"attempt {attempt} fails")
    return attempt


@env.task(retries=flyte.RetryStrategy(3, backoff=FAST_RETRY))
async def flaky_strategy(fail_times: int, log: str) -> int:
    attempt = _attempt()
    append_line(log, str(attempt))
    if attempt < fail_times:
        raise ValueError(f"attempt {attempt} fails")
    return attempt


@env.task(retries=flyte.RetryStrategy(2, backoff=FAST_RETRY))
def flaky_sync(fail_times: int, log: str) -> int:
    attempt = _attempt()
    append_line(log, str(attempt))
    if attempt < fail_times:
        raise ValueError(f"attempt {attempt} fails")
    return attempt


@env.task
async def flaky_no_retries(fail_times: int, log: str) -> int:
    attempt = _attempt()
    append_line(log, str(attempt))
    if attempt < fail_times:
        raise ValueError(f"attempt {attempt} fails")
    return attempt


@env.task(retries=flyte.RetryStrategy(3, backoff=FAST_RETRY))
async def non_recoverable(log: str) -> int:
    append_line(log, str(_attempt()))
    raise NonRecoverableError("give up now")


@env.task
async def catch_non_recoverable(log: str) -> dict[str, Any]:
    try:
        await non_recoverable(log)
    except RuntimeUserError as err:
        return _describe(err)
    return {"type": None}


@env.task(timeout=0.2)
async def slow_async(seconds: float) -> int:
    await asyncio.sleep(seconds)
    return 1


@env.task(timeout=flyte.Timeout(max_runtime=0.2))
def slow_sync(release: str, done: str) -> int:
    """Blocks until `release` exists (or a long deadline), then writes `done`: the test decides when it ends."""
    wait_for_file(release)
    append_line(done, "done")
    return 1


@env.task
async def catch_timeout() -> dict[str, Any]:
    try:
        await slow_async(LONG_SLEEP_S)
    except TaskTimeoutError as err:
        return _describe(err)
    return {"type": None}


@env.task(timeout=0.2, retries=flyte.RetryStrategy(1, backoff=FAST_RETRY))
async def slow_first_attempt(log: str) -> int:
    """Times out on its first attempt only: timeouts are retried like other failures."""
    attempt = _attempt()
    append_line(log, str(attempt))
    if attempt == 0:
        await asyncio.sleep(LONG_SLEEP_S)
    return attempt


@env.task
async def double(n: int) -> int:
    return n * 2


@env.task
async def call_child_with_wrong_arguments() -> dict[str, Any]:
    try:
        await double(1, 2)  # type: ignore[call-arg]
    except (TypeError, RuntimeUserError) as err:
        return _describe(err)
    return {"type": None}


@env.task(timeout=flyte.Timeout(deadline=0.2))
async def past_deadline(seconds: float) -> int:
    await asyncio.sleep(seconds)
    return 1


@env.task
async def describe_argument(value: Any) -> str:
    return type(value).__name__


@env.task
async def pass_a_lock_to_a_child() -> str:
    import threading

    return await describe_argument(threading.Lock())
