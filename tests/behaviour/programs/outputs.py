"""Tasks with every output shape: none, one, a tuple, a NamedTuple; and parents reading their children's outputs."""

from __future__ import annotations

import threading
from typing import NamedTuple

import flyte_celery as flyte

env = flyte.TaskEnvironment("behaviour-outputs")


class Stats(NamedTuple):
    total: int
    label: str


@env.task
async def nothing() -> None:
    return None


@env.task
async def double(n: int) -> int:
    return n * 2


@env.task
async def stats(n: int) -> Stats:
    return Stats(total=n * 10, label=f"n={n}")


@env.task
async def pair(n: int) -> tuple[int, str]:
    return n + 1, str(n)


@env.task
async def with_defaults(a: int, b: int = 5, *, c: str = "c") -> str:
    return f"{a}-{b}-{c}"


@env.task
async def children_outputs(n: int) -> tuple[int, tuple[int, str], tuple[int, str], None]:
    """A parent returning what its children returned, as native values."""
    one = await double(n)
    named = await stats(n)
    plain = await pair(n)
    none = await nothing.aio()  # `.aio` too: the value of a task without outputs is still None
    return one, (named.total, named.label), plain, none


@env.task
async def append_99(xs: list[int]) -> list[int]:
    xs.append(99)
    return xs


@env.task
async def pass_a_list_to_a_mutating_child() -> dict[str, list[int]]:
    """A child gets a copy of its inputs, as on a worker: its changes do not reach the caller's objects."""
    mine = [1, 2]
    theirs = await append_99(mine)
    return {"mine": mine, "theirs": theirs}


@env.task
async def unserializable() -> object:
    return threading.Lock()


@env.task
def touch(path: str) -> str:
    """Creates `path`: proof that the task ran."""
    with open(path, "w") as handle:
        handle.write("ran")
    return path
