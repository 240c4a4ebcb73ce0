"""Sync task bodies and how they mix with async ones; calls outside runs; `forward`, `override`, env names."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import flyte_celery as flyte
from flyte_celery.errors import SyncTaskCallInAsyncContextError
from tests.behaviour.conftest import Runner
from tests.behaviour.programs import sync_tasks
from tests.behaviour.programs._files import read_lines


def test_sync_root(runner: Runner) -> None:
    assert runner(sync_tasks.increment, 1).outputs()[0] == 2


def test_sync_parent_calls_sync_children(runner: Runner) -> None:
    assert runner(sync_tasks.sync_parent, 1).outputs()[0] == 14


def test_sync_grandparent(runner: Runner) -> None:
    assert runner(sync_tasks.sync_grandparent, 1).outputs()[0] == 28


def test_async_parent_awaits_sync_child_with_aio(runner: Runner) -> None:
    assert runner(sync_tasks.async_parent_awaiting_aio, 1).outputs()[0] == 5


def test_sync_parent_maps_an_async_child(runner: Runner) -> None:
    assert runner(sync_tasks.sync_parent_of_async, 1).outputs()[0] == 6


def test_direct_sync_call_from_async_parent_raises(runner: Runner) -> None:
    seen = runner(sync_tasks.async_parent_calling_sync_directly, 1).outputs()[0]

    assert seen == "SyncTaskCallInAsyncContextError"


def test_uncaught_direct_sync_call_fails_the_run(runner: Runner) -> None:
    with pytest.raises(SyncTaskCallInAsyncContextError):
        runner(sync_tasks.async_parent_calling_sync_directly_uncaught, 1).outputs()


def test_tasks_called_outside_a_run_are_plain_calls() -> None:
    assert sync_tasks.increment(1) == 2
    assert sync_tasks.sync_parent(1) == 14
    assert asyncio.run(sync_tasks.async_double(4)) == 8
    assert asyncio.run(sync_tasks.increment.aio(1)) == 2
    assert sync_tasks.increment.forward(4) == 5


def test_forward_runs_in_the_callers_action(runner: Runner) -> None:
    seen = runner(sync_tasks.forward_vs_call).outputs()[0]

    assert seen["forwarded"] == seen["self"]
    assert seen["called"] != seen["self"]


def test_override_cache_in_a_parent(runner: Runner) -> None:
    cached_first, cached_second, uncached = runner(sync_tasks.override_cache_in_parent, 1).outputs()[0]

    assert cached_first == cached_second
    assert uncached != cached_first


def test_override_cache_of_the_root(runner: Runner) -> None:
    cached = sync_tasks.fresh_token.override(cache="auto")

    assert runner(cached, 1).outputs()[0] == runner(cached, 1).outputs()[0]
    assert runner(sync_tasks.fresh_token, 1).outputs()[0] != runner(sync_tasks.fresh_token, 1).outputs()[0]


def test_override_retries_in_a_parent(runner: Runner, tmp_path: Path) -> None:
    log = tmp_path / "attempts"

    assert runner(sync_tasks.override_retries_in_parent, str(log)).outputs()[0] == 1
    assert read_lines(str(log)) == ["0", "1"]


def test_override_leaves_the_original_task_unchanged(runner: Runner) -> None:
    seen = runner(sync_tasks.describe_task_settings).outputs()[0]

    assert seen == {"original_cache": "disable", "changed_cache": "auto", "changed_retries": 3, "same_name": True}


@pytest.mark.parametrize("setting", ["name", "no_such_setting"])
def test_override_rejects_unknown_or_fixed_settings(setting: str) -> None:
    with pytest.raises(ValueError):
        sync_tasks.increment.override(**{setting: "x"})


@pytest.mark.parametrize("name", ["Bad_Name", "has space", "trailing-", "double--dash", ""])
def test_environment_names_are_validated(name: str) -> None:
    with pytest.raises(ValueError):
        flyte.TaskEnvironment(name)
    assert flyte.TaskEnvironment("my_env-2").name == "my_env-2"
