"""Custom context: the run's base, `flyte.custom_context(...)` blocks and how they reach every descendant."""

from __future__ import annotations

from typing import Any

import pytest

import flyte_celery as flyte
from tests.behaviour.conftest import Runner
from tests.behaviour.programs import custom_ctx

BLOCK = {"team": "blue", "stage": "one"}


@pytest.fixture
def seen(runner: Runner) -> dict[str, Any]:
    """What `custom_ctx.propagation` observed, in a run whose base context is {"base": "b", "stage": "zero"}."""
    observed: dict[str, Any] = runner(custom_ctx.propagation, custom_context={"base": "b", "stage": "zero"}).outputs()[
        0
    ]
    return observed


def test_run_level_base_reaches_the_root(runner: Runner) -> None:
    assert runner(custom_ctx.root_view, custom_context={"a": "1"}).outputs()[0] == {"a": "1"}


def test_no_custom_context_by_default(runner: Runner) -> None:
    assert runner(custom_ctx.root_view).outputs()[0] == {}


def test_before_the_block_tasks_see_the_base(seen: dict[str, Any]) -> None:
    assert seen["before"] == {"base": "b", "stage": "zero"}
    assert seen["get_before"] == {"base": "b", "stage": "zero"}


def test_block_merges_into_the_base_and_later_keys_win(seen: dict[str, Any]) -> None:
    expected = {"base": "b", **BLOCK}

    assert seen["inside"] == expected
    assert seen["get_inside"] == expected


@pytest.mark.parametrize("how", ["child", "sync_child", "created"])
def test_block_reaches_direct_children(seen: dict[str, Any], how: str) -> None:
    assert seen[how] == {"base": "b", **BLOCK}


def test_block_reaches_grandchildren(seen: dict[str, Any]) -> None:
    expected = {"base": "b", **BLOCK}

    assert seen["grandchild"] == {"self": expected, "child": expected}


def test_block_reaches_gathered_and_mapped_children(seen: dict[str, Any]) -> None:
    expected = {"base": "b", **BLOCK}

    assert seen["gathered"] == [expected, expected]
    assert seen["mapped"] == [expected, expected]


def test_nested_blocks_merge_and_leaving_restores(seen: dict[str, Any]) -> None:
    assert seen["nested"] == {"base": "b", "team": "blue", "stage": "two", "extra": "x"}
    assert seen["after_nested"] == {"base": "b", **BLOCK}


def test_leaving_the_block_restores_the_base(seen: dict[str, Any]) -> None:
    assert seen["after"] == {"base": "b", "stage": "zero"}
    assert seen["get_after"] == {"base": "b", "stage": "zero"}


def test_sync_parent_block_reaches_blocking_and_mapped_children(runner: Runner) -> None:
    seen = runner(custom_ctx.sync_propagation).outputs()[0]

    assert seen["child"] == {"team": "green"}
    assert seen["mapped"] == [{"team": "green"}, {"team": "green"}]
    assert seen["after"] == {}


def test_non_string_value_raises_type_error_inside_a_task(runner: Runner) -> None:
    # Ours: Flyte 2.12.1 accepts a non-string value here.
    assert runner(custom_ctx.non_string_value).outputs()[0].startswith("TypeError")


def test_non_string_value_raises_type_error_outside_a_task() -> None:
    with pytest.raises(TypeError):
        with flyte.custom_context(count=1):  # type: ignore[arg-type]
            pass


def test_get_custom_context_outside_a_task_is_empty() -> None:
    assert flyte.get_custom_context() == {}


def test_block_outside_a_task_adds_to_the_runs_base(runner: Runner) -> None:
    # Ours: in Flyte a block outside any task does nothing.
    with flyte.custom_context(tenant="t1"):
        assert flyte.get_custom_context() == {"tenant": "t1"}
        seen = runner(custom_ctx.root_view, custom_context={"base": "b"}).outputs()[0]

    assert seen == {"base": "b", "tenant": "t1"}
    assert flyte.get_custom_context() == {}


def test_the_run_option_wins_over_an_enclosing_block(runner: Runner) -> None:
    with flyte.custom_context(tenant="block", extra="x"):
        seen = runner(custom_ctx.root_view, custom_context={"tenant": "option"}).outputs()[0]

    assert seen == {"tenant": "option", "extra": "x"}


def test_run_option_rejects_non_string_values() -> None:
    with pytest.raises(ValueError, match="custom_context"):
        flyte.with_runcontext(custom_context={"a": 1})
