"""Cached and uncached tasks returning a fresh random token per execution, so a reused result is visible."""

from __future__ import annotations

import uuid

import flyte_celery as flyte
from tests.behaviour.programs._files import create_once

env = flyte.TaskEnvironment("behaviour-caching")
cached_env = flyte.TaskEnvironment("behaviour-caching-env-level", cache="auto")


def fresh_token() -> str:
    """Differs on every execution, in any process."""
    return uuid.uuid4().hex


@env.task(cache="auto")
async def auto_stamp(x: int) -> str:
    return fresh_token()


@env.task(cache="disable")
async def disabled_stamp(x: int) -> str:
    return fresh_token()


@env.task
async def default_stamp(x: int) -> str:
    return fresh_token()


@cached_env.task
async def env_level_stamp(x: int) -> str:
    return fresh_token()


@env.task(cache=flyte.Cache("override", version_override="v1"))
async def override_stamp(x: int) -> str:
    return fresh_token()


@env.task(cache=flyte.Cache("auto", ignored_inputs=("note",)))
async def ignoring_stamp(x: int, note: str) -> str:
    return fresh_token()


@env.task(cache="auto")
async def fails_first_time(marker: str) -> str:
    """Fails while `marker` does not exist (creating it), then succeeds: one failure, then a result."""
    if create_once(marker):
        raise ValueError("first execution fails")
    return fresh_token()


@env.task
async def stamp_twice(x: int) -> list[str]:
    """The same cached call twice in one run."""
    return [await auto_stamp(x), await auto_stamp(x)]


@env.task
async def call_auto_stamp(x: int) -> str:
    """An uncached parent whose child is cached."""
    return await auto_stamp(x)


@env.task(cache=flyte.Cache("auto", max_age=3))
async def short_lived(x: int) -> str:
    """Cached for three seconds at most."""
    return uuid.uuid4().hex
