"""One root task per way a task can be reached from another one's code, for `collect_tasks`."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

import flyte_celery as flyte
from tests.unit.bundle_programs import leaf_module

dep_env = flyte.TaskEnvironment("unit-bundle-dep")
hub_env = flyte.TaskEnvironment("unit-bundle-hub", depends_on=[dep_env])
env = flyte.TaskEnvironment("unit-bundle-graph", cache="auto")


@dep_env.task
async def dep_task(x: int) -> int:
    return x - 1


@env.task
async def via_global(x: int) -> int:
    return x + 10


@env.task
async def via_closure(x: int) -> int:
    return x + 20


@env.task
async def via_partial(x: int, y: int) -> int:
    return x + y


@env.task
async def via_nested(x: int) -> int:
    return x + 40


@env.task
async def via_default(x: int) -> int:
    return x + 50


@env.task
async def never_called(x: int) -> int:
    return x


def _make_caller(task: Callable[[int], Awaitable[int]]) -> Callable[[int], Awaitable[int]]:
    async def call(x: int) -> int:
        return await task(x)

    return call


_closure_caller = _make_caller(via_closure)
_partial_call = functools.partial(via_partial, y=30)


async def _with_default(x: int, task: Callable[[int], Awaitable[int]] = via_default) -> int:
    return await task(x)


@env.task
async def root_global(x: int) -> int:
    return await via_global(x)


@env.task
async def root_closure(x: int) -> int:
    return await _closure_caller(x)


@env.task
async def root_partial(x: int) -> int:
    return await _partial_call(x)


@env.task
async def root_attribute(x: int) -> int:
    return await leaf_module.leaf_task(x)


@env.task
async def root_nested(x: int) -> int:
    async def inner(y: int) -> int:
        return await via_nested(y)

    return await inner(x)


@env.task
async def root_default(x: int) -> int:
    return await _with_default(x)


@hub_env.task
async def root_depends_on(x: int) -> int:
    # Uses its environment (and so the environments it depends on).
    return x + len(hub_env.depends_on)


@env.task
async def root_all(x: int) -> int:
    a = await root_global(x)
    b = await root_closure(x)
    c = await root_partial(x)
    d = await root_attribute(x)
    return a + b + c + d + await root_nested(x) + await root_default(x) + await root_depends_on(x)


class Helper:
    @staticmethod
    async def go(x: int) -> int:
        return await via_global(x)


@env.task
async def root_class(x: int) -> int:
    return await Helper.go(x)


async def _keyword_default(*, task: Callable[[int], Awaitable[int]] = via_default) -> int:
    return await task(1)


@env.task
async def root_keyword_default(x: int) -> int:
    return x + await _keyword_default()
