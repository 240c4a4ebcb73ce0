"""Tasks reading the process environment, for the run's `env_vars`."""

from __future__ import annotations

import os

import flyte_celery as flyte

env = flyte.TaskEnvironment("behaviour-environment")


@env.task
async def read_env(key: str) -> str | None:
    return os.environ.get(key)


@env.task
def read_env_sync(key: str) -> str | None:
    return os.environ.get(key)


@env.task
async def read_env_everywhere(key: str) -> dict[str, str | None]:
    return {"root": os.environ.get(key), "child": await read_env(key), "sync_child": await read_env_sync.aio(key)}
