"""Custom context: what tasks see at each level, inside and outside `flyte.custom_context(...)` blocks."""

from __future__ import annotations

import asyncio

import flyte_celery as flyte

env = flyte.TaskEnvironment("behaviour-custom-context")


def current() -> dict[str, str]:
    ctx = flyte.ctx()
    assert ctx is not None
    return dict(ctx.custom_context)


@env.task
async def leaf(tag: str) -> dict[str, str]:
    return current()


@env.task
def sync_leaf(tag: str) -> dict[str, str]:
    return current()


@env.task
async def middle(tag: str) -> dict[str, object]:
    return {"self": current(), "child": await leaf(tag)}


@env.task
async def root_view() -> dict[str, str]:
    return current()


@env.task
async def propagation() -> dict[str, object]:
    """Every way a child can be called, inside a block; then nested blocks; then after leaving them."""
    seen: dict[str, object] = {"before": current(), "get_before": flyte.get_custom_context()}
    with flyte.custom_context(team="blue", stage="one"):
        seen["inside"] = current()
        seen["get_inside"] = flyte.get_custom_context()
        seen["child"] = await leaf("a")
        seen["sync_child"] = await sync_leaf.aio("a")
        seen["grandchild"] = await middle("a")
        seen["gathered"] = list(await asyncio.gather(leaf("g1"), leaf("g2")))
        seen["created"] = await asyncio.create_task(leaf("c"))
        seen["mapped"] = [item async for item in flyte.map.aio(leaf, ["m1", "m2"])]
        with flyte.custom_context(stage="two", extra="x"):
            seen["nested"] = await leaf("n")
        seen["after_nested"] = await leaf("an")
    seen["after"] = await leaf("after")
    seen["get_after"] = flyte.get_custom_context()
    return seen


@env.task
def sync_propagation() -> dict[str, object]:
    """A sync parent: blocking calls and `flyte.map` inside a block."""
    with flyte.custom_context(team="green"):
        child = sync_leaf("s")
        mapped = list(flyte.map(leaf, ["m1", "m2"]))
    return {"child": child, "mapped": mapped, "after": sync_leaf("after")}


@env.task
async def non_string_value() -> str:
    try:
        with flyte.custom_context(count=1):  # type: ignore[arg-type]
            return "accepted"
    except TypeError as exc:
        return f"TypeError: {exc}"
