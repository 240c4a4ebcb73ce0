"""Programs for the remote-mode tests: env vars, client death, abort, errors, retries and timeouts.

Tasks that the tests need to observe from outside record what they did in Redis (the worker's
`FLYTE_CELERY_REDIS_URL`): `test:executions` counts executions per name, `test:attempts` lists retry attempts.
"""

from __future__ import annotations

import asyncio
import os
import time

import flyte_celery as flyte
from flyte_celery.errors import RuntimeUserError
from tests.integration.programs._executions import cluster_redis, count

env = flyte.TaskEnvironment("remote_tasks")
# A queue no test worker consumes: a child sent there keeps its parent suspended until the run is aborted.
UNSERVED_QUEUE = "flyte-celery-tests-unserved"
# A queue served by a second worker in the env_vars isolation test.
SIDE_QUEUE = "flyte-celery-tests-side"
GO_KEY = "test:go"
WAIT_FOR_GO_S = 20.0
ENV_VAR = "X"


@env.task
async def slow_double(x: int, seconds: float) -> int:
    await asyncio.sleep(seconds)
    return 2 * x


@env.task
async def add_one(x: int) -> int:
    return x + 1


# --- env_vars ----------------------------------------------------------------------------------------------------


@env.task
async def env_child() -> str | None:
    return os.environ.get(ENV_VAR)


@env.task
def env_sync_child() -> str | None:
    return os.environ.get(ENV_VAR)


@env.task
async def env_root() -> list[str | None]:
    """The variable as the root, an async child and a sync child see it."""
    mine = os.environ.get(ENV_VAR)
    child, sync_child = await asyncio.gather(env_child(), env_sync_child.aio())
    return [mine, child, sync_child]


@env.task
async def env_probe() -> str | None:
    return os.environ.get(ENV_VAR)


@env.task
async def env_probe_with_pid() -> list[str | None]:
    return [str(os.getpid()), os.environ.get(ENV_VAR)]


@env.task(queue=UNSERVED_QUEUE)
async def never_runs() -> int:
    return 0


@env.task
async def env_holder() -> int:
    """Stays suspended (with the run's env_vars applied) until its run is aborted; records its pid."""
    client = cluster_redis()
    try:
        client.set("test:holder_pid", os.getpid())
    finally:
        client.close()
    return await never_runs()


@env.task(queue=SIDE_QUEUE)
def wait_for_go() -> int:
    """Returns once `GO_KEY` is set (or fails after `WAIT_FOR_GO_S`): lets a test choose when its parent resumes."""
    client = cluster_redis()
    try:
        deadline = time.monotonic() + WAIT_FOR_GO_S
        while not client.exists(GO_KEY):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{GO_KEY} was never set")
            time.sleep(0.01)
    finally:
        client.close()
    return 1


@env.task
async def env_resumer(hold_seconds: float) -> int:
    """Waits on a child elsewhere, then keeps running (with the run's env_vars) for `hold_seconds`."""
    got: int = await wait_for_go.aio()
    await asyncio.sleep(hold_seconds)
    return got


@env.task
def env_watcher(seconds: float) -> list[str]:
    """Lets the resumer's child finish, then records every value of the variable seen for `seconds`."""
    client = cluster_redis()
    try:
        client.set(GO_KEY, "1")
    finally:
        client.close()
    seen = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seen.add(str(os.environ.get(ENV_VAR)))
        time.sleep(0.005)
    return sorted(seen)


# --- abort -------------------------------------------------------------------------------------------------------


@env.task
async def sleeper(seconds: float) -> int:
    count("sleeper")
    await asyncio.sleep(seconds)
    count("sleeper-finished")
    return 1


@env.task
async def waits_on_sleeper(seconds: float) -> int:
    count("waits_on_sleeper")
    return await sleeper(seconds)


# --- errors, retries, timeouts -----------------------------------------------------------------------------------


@env.task
async def failing_child(n: int) -> int:
    raise ValueError(f"bad value {n}")


@env.task
async def parent_of_failing(n: int) -> int:
    return await failing_child(n)


@env.task
async def parent_catching(n: int) -> list[str | None]:
    """What the parent sees of its child's failure: the error's class, code and traceback text."""
    try:
        await failing_child(n)
    except RuntimeUserError as err:
        return [type(err).__name__, err.code, err.traceback_text]
    return []


@env.task(retries=flyte.RetryStrategy(2, backoff=flyte.Backoff(base=0.05)))
async def flaky(fail_below: int) -> int:
    """Fails until its attempt number reaches `fail_below`; records every attempt as `<attempt>:<action name>`."""
    context = flyte.ctx()
    assert context is not None
    client = cluster_redis()
    try:
        client.rpush("test:attempts", f"{context.attempt_number}:{context.action.name}")
    finally:
        client.close()
    if context.attempt_number < fail_below:
        raise ValueError(f"attempt {context.attempt_number} fails on purpose")
    return context.attempt_number


@env.task
async def parent_of_flaky(fail_below: int) -> int:
    return await flaky(fail_below)


@env.task(timeout=1)
async def too_slow() -> int:
    await asyncio.sleep(10)
    return 0


@env.task
async def parent_of_too_slow() -> int:
    return await too_slow()
