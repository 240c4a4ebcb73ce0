"""Actions' env_vars in the process environment: overlapping overlays, pauses, and per-context variables."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import os
import secrets
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import ExitStack

import pytest

from flyte_celery import _environ
from flyte_celery._environ import (
    ContextEnviron,
    action_environ,
    environ_overlay,
    environ_paused,
    install_context_environ,
)


@pytest.fixture
def key() -> Iterator[str]:
    """A variable name of this test's own, unset before and after."""
    name = f"FLYTE_CELERY_UNIT_ENV_{secrets.token_hex(4).upper()}"
    assert name not in os.environ
    yield name
    os.environ.pop(name, None)
    # The module's bookkeeping must be empty again once every block has ended.
    assert name not in _environ._original
    assert not _environ._active
    assert not _environ._paused


@pytest.fixture
def context_environ() -> Iterator[ContextEnviron]:
    """`os.environ` wrapped for the test; the original object is put back afterwards."""
    original = os.environ
    install_context_environ()
    try:
        assert isinstance(os.environ, ContextEnviron)
        yield os.environ
    finally:
        setattr(os, "environ", original)  # noqa: B010 - os.environ is typed as os._Environ


# --- environ_overlay --------------------------------------------------------------------------------------------


def test_overlay_sets_and_removes_an_absent_variable(key: str) -> None:
    with environ_overlay({key: "inside"}):
        assert os.environ[key] == "inside"
    assert key not in os.environ


def test_overlay_restores_an_existing_value(key: str) -> None:
    os.environ[key] = "original"
    with environ_overlay({key: "inside"}):
        assert os.environ[key] == "inside"
    assert os.environ[key] == "original"


def test_overlay_restores_an_empty_original(key: str) -> None:
    os.environ[key] = ""
    with environ_overlay({key: "inside"}):
        assert os.environ[key] == "inside"
    assert os.environ[key] == ""


def test_empty_overlay_changes_nothing(key: str) -> None:
    with environ_overlay({}):
        assert key not in os.environ
    assert key not in os.environ


class Block:
    """An overlay entered and ended in an asyncio-task-like context of its own, so blocks can end in any order."""

    def __init__(self, values: dict[str, str]) -> None:
        self.context = contextvars.copy_context()
        self.stack = ExitStack()
        self.context.run(self.stack.enter_context, environ_overlay(values))

    def end(self) -> None:
        self.context.run(self.stack.close)


@pytest.mark.parametrize("original", [None, "original"])
@pytest.mark.parametrize("end_order", list(itertools.permutations(range(3))))
def test_overlapping_overlays_ending_in_any_order_restore_exactly(
    key: str, original: str | None, end_order: tuple[int, ...]
) -> None:
    if original is not None:
        os.environ[key] = original
    values = ["first", "second", "third"]
    blocks = [Block({key: value}) for value in values]
    assert os.environ[key] == "third"  # the most recent active overlay wins
    still_active = [0, 1, 2]
    for index in end_order:
        blocks[index].end()
        still_active.remove(index)
        expected = values[still_active[-1]] if still_active else original
        assert os.environ.get(key) == expected
    assert os.environ.get(key) == original


def test_overlays_on_different_keys_are_independent(key: str) -> None:
    other = f"{key}_OTHER"
    outer = Block({key: "a", other: "a"})
    inner = Block({other: "b"})
    assert (os.environ[key], os.environ[other]) == ("a", "b")
    outer.end()
    assert key not in os.environ
    assert os.environ[other] == "b"
    inner.end()
    assert other not in os.environ


# --- environ_paused ---------------------------------------------------------------------------------------------


def test_pause_lifts_and_reapplies(key: str) -> None:
    os.environ[key] = "original"
    with environ_overlay({key: "action"}):
        with environ_paused():
            assert os.environ[key] == "original"
        assert os.environ[key] == "action"
    assert os.environ[key] == "original"


def test_pause_without_overlay_is_a_no_op(key: str) -> None:
    with environ_paused():
        assert key not in os.environ
    assert key not in os.environ


def test_pause_shows_the_other_active_overlay(key: str) -> None:
    other_run = Block({key: "other-run"})

    def paused_inner() -> None:
        with environ_overlay({key: "mine"}):
            assert os.environ[key] == "mine"
            with environ_paused():
                assert os.environ[key] == "other-run"
            assert os.environ[key] == "mine"

    contextvars.copy_context().run(paused_inner)
    assert os.environ[key] == "other-run"
    other_run.end()
    assert key not in os.environ


def test_nested_pauses_count(key: str) -> None:
    with environ_overlay({key: "action"}):
        with environ_paused():
            with environ_paused():
                assert key not in os.environ
            assert key not in os.environ  # the outer pause is still on
        assert os.environ[key] == "action"
    assert key not in os.environ


def test_concurrent_pauses_count(key: str) -> None:
    async def scenario() -> None:
        with environ_overlay({key: "action"}):
            entered = [asyncio.Event(), asyncio.Event()]
            leave = [asyncio.Event(), asyncio.Event()]

            async def wait_paused(i: int) -> None:
                with environ_paused():
                    entered[i].set()
                    await leave[i].wait()

            tasks = [asyncio.ensure_future(wait_paused(i)) for i in range(2)]
            await asyncio.gather(entered[0].wait(), entered[1].wait())
            assert key not in os.environ
            leave[0].set()
            await tasks[0]
            assert key not in os.environ  # one pause is still waiting
            leave[1].set()
            await tasks[1]
            assert os.environ[key] == "action"
        assert key not in os.environ

    asyncio.run(scenario())


def test_pause_outliving_its_overlay_does_not_reapply(key: str) -> None:
    async def scenario() -> None:
        paused, leave = asyncio.Event(), asyncio.Event()

        async def waiter() -> None:
            with environ_paused():
                paused.set()
                await leave.wait()

        with environ_overlay({key: "action"}):
            task = asyncio.ensure_future(waiter())  # copies the context: the pause belongs to this overlay
            await paused.wait()
        assert key not in os.environ
        leave.set()
        await task
        assert key not in os.environ

    asyncio.run(scenario())
    assert not _environ._paused
    assert not _environ._active


# --- ContextEnviron + action_environ -----------------------------------------------------------------------------


def test_install_wraps_once(context_environ: ContextEnviron) -> None:
    real: object = context_environ.real
    install_context_environ()
    current: object = os.environ
    assert current is context_environ
    assert not isinstance(real, ContextEnviron)


def test_action_variables_are_visible_only_inside_the_block(context_environ: ContextEnviron, key: str) -> None:
    with action_environ({key: "action"}):
        assert os.environ[key] == "action"
        assert os.getenv(key) == "action"
        assert os.environ.get(key) == "action"
        assert key in os.environ
        assert key in list(os.environ)
        assert dict(os.environ)[key] == "action"
        assert os.environ.copy()[key] == "action"
        assert len(os.environ) == len(context_environ.real) + 1
        assert key not in context_environ.real  # the real environment is untouched
    assert key not in os.environ
    assert os.getenv(key) is None
    assert key not in dict(os.environ)


def test_action_variables_shadow_the_real_value(context_environ: ContextEnviron, key: str) -> None:
    context_environ.real[key] = "real"
    with action_environ({key: "action"}):
        assert os.environ[key] == "action"
        assert list(os.environ).count(key) == 1
    assert os.environ[key] == "real"


def test_nested_action_environ_merges(context_environ: ContextEnviron, key: str) -> None:
    other = f"{key}_OTHER"
    with action_environ({key: "outer", other: "outer"}):
        with action_environ({other: "inner"}):
            assert (os.environ[key], os.environ[other]) == ("outer", "inner")
        assert os.environ[other] == "outer"
    assert other not in os.environ


def test_tasks_and_context_copying_threads_started_inside_see_the_variables(
    context_environ: ContextEnviron, key: str
) -> None:
    async def scenario() -> tuple[str | None, str | None, str | None]:
        with action_environ({key: "action"}):
            in_task = await asyncio.ensure_future(_read_later(key))
            in_thread = await asyncio.to_thread(os.getenv, key)
        outside = await asyncio.to_thread(os.getenv, key)
        return in_task, in_thread, outside

    assert asyncio.run(scenario()) == ("action", "action", None)


async def _read_later(key: str) -> str | None:
    await asyncio.sleep(0)
    return os.getenv(key)


def test_another_thread_does_not_see_the_variables(context_environ: ContextEnviron, key: str) -> None:
    inside, release = threading.Event(), threading.Event()
    seen: list[object] = []

    def action() -> None:
        with action_environ({key: "action"}):
            inside.set()
            release.wait(5)

    def other() -> None:
        seen.append(os.getenv(key))
        seen.append(key in os.environ)

    worker = threading.Thread(target=action)
    worker.start()
    assert inside.wait(5)
    reader = threading.Thread(target=other)
    reader.start()
    reader.join(5)
    release.set()
    worker.join(5)
    assert seen == [None, False]


def test_writes_go_to_the_real_environment(context_environ: ContextEnviron, key: str) -> None:
    with action_environ({f"{key}_OTHER": "x"}):
        os.environ[key] = "written"
        assert context_environ.real[key] == "written"
        del os.environ[key]
        assert key not in context_environ.real
    with action_environ({f"{key}_OTHER": "x"}):
        os.environ[key] = "kept"
    assert context_environ.real[key] == "kept"


def test_write_then_read_of_an_action_variable(context_environ: ContextEnviron, key: str) -> None:
    with action_environ({key: "action"}):
        os.environ[key] = "changed"
        assert os.environ[key] == "changed"


def test_pop_with_default_of_an_action_variable(context_environ: ContextEnviron, key: str) -> None:
    with action_environ({key: "action"}):
        os.environ.pop(key, None)


def test_context_environ_over_a_plain_mapping(key: str) -> None:
    real: MutableMapping[str, str] = {"A": "1"}
    wrapped = ContextEnviron(real)
    with action_environ({key: "x"}):
        assert dict(wrapped) == {"A": "1", key: "x"}
        assert repr(wrapped) == f"ContextEnviron({{'A': '1', {key!r}: 'x'}})"
    assert dict(wrapped) == {"A": "1"}
    assert len(wrapped) == 1
