"""The run's `env_vars`: visible to every task of the run, gone from this process afterwards."""

from __future__ import annotations

import os
import uuid

import pytest

from flyte_celery.errors import RuntimeUserError
from tests.behaviour.conftest import Runner
from tests.behaviour.programs import environment, failures

KEY = "FLYTE_CELERY_BEHAVIOUR_VAR"


def test_env_vars_reach_every_task_of_the_run(runner: Runner) -> None:
    value = uuid.uuid4().hex

    seen = runner(environment.read_env_everywhere, KEY, env_vars={KEY: value}).outputs()[0]

    assert seen == {"root": value, "child": value, "sync_child": value}


def test_env_vars_are_removed_after_the_run(runner: Runner) -> None:
    assert KEY not in os.environ

    runner(environment.read_env, KEY, env_vars={KEY: "during"})

    assert KEY not in os.environ


def test_env_vars_restore_a_previous_value(runner: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY, "before")

    seen = runner(environment.read_env, KEY, env_vars={KEY: "during"}).outputs()[0]

    assert seen == "during"
    assert os.environ[KEY] == "before"


def test_env_vars_are_removed_after_a_failed_run(runner: Runner) -> None:
    with pytest.raises(RuntimeUserError):
        runner(failures.explode_with_value_error, 1, env_vars={KEY: "during"}).outputs()

    assert KEY not in os.environ


def test_runs_without_env_vars_do_not_see_another_runs(runner: Runner) -> None:
    runner(environment.read_env, KEY, env_vars={KEY: "first"})

    assert runner(environment.read_env, KEY).outputs()[0] is None
