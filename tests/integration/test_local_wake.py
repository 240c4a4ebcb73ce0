"""A wait in the process that records an action's outcome is resolved by that process at once, with the recorded
outcome, rather than by Redis's notification coming back to it (a parent and its child often share a process)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

from flyte_celery._celery.app import make_app
from flyte_celery._celery.offload import outcome_of
from flyte_celery._celery.outcome import Outcome
from flyte_celery._celery.records import notification
from flyte_celery._celery.runtime import Runtime
from flyte_celery._config_model import Settings

ACTION = "child-1"
WAIT_DEADLINE_S = 10.0


@contextlib.asynccontextmanager
async def runtime_with_a_run(redis_url: str, redis_client: Any) -> AsyncIterator[tuple[Runtime, str]]:
    """A started worker-side runtime, and the name of a run whose record exists."""
    settings = Settings.model_validate(
        {
            "broker": {"url": redis_url},
            "redis": {"url": redis_url, "key_prefix": f"test-local-wake-{secrets.token_hex(3)}:"},
            "security": {"signing_key": "test-local-wake-key"},
        }
    )
    runtime = Runtime(settings, make_app(settings))
    await runtime.start()
    try:
        run = f"run-{secrets.token_hex(3)}"
        redis_client.hset(runtime.keys.run(run), "root", "env.main")
        yield runtime, run
    finally:
        await runtime.close()


def test_the_recording_process_resolves_its_own_wait_with_the_recorded_outcome(
    redis_url: str, redis_client: Any
) -> None:
    asyncio.run(resolves_its_own_wait(redis_url, redis_client))


def test_an_outcome_that_lost_the_race_wakes_nobody(redis_url: str, redis_client: Any) -> None:
    asyncio.run(lost_race_wakes_nobody(redis_url, redis_client))


async def resolves_its_own_wait(redis_url: str, redis_client: Any) -> None:
    async with runtime_with_a_run(redis_url, redis_client) as (runtime, run):
        # Registered here only, not in Redis's waiters set: Redis notifies nobody, so only this process can wake it.
        waiting = runtime.replies.expect(notification(run, ACTION))
        assert await runtime.complete(run, ACTION, Outcome(value={"n": 42}), "task 'env.child'")
        record = await asyncio.wait_for(waiting, WAIT_DEADLINE_S)
        assert record == redis_client.get(runtime.keys.result(run, ACTION))
        assert record is not None
        assert (await outcome_of(runtime.keyring, record, run, ACTION)).value == {"n": 42}


async def lost_race_wakes_nobody(redis_url: str, redis_client: Any) -> None:
    async with runtime_with_a_run(redis_url, redis_client) as (runtime, run):
        assert await runtime.complete(run, ACTION, Outcome(value="first"), "task 'env.child'")
        waiting = runtime.replies.expect(notification(run, ACTION))
        assert not await runtime.complete(run, ACTION, Outcome(value="second"), "task 'env.child'")
        assert not waiting.done()  # the recorded outcome is "first": a wait must read it, not be handed "second"
        runtime.replies.forget(notification(run, ACTION), waiting)
