"""Caching: behaviours and their aliases, keys (inputs, versions, scope) and the run's cache options.

Every cached task returns a fresh random token when it executes, so equal tokens mean "reused from the cache".
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

import flyte_celery as flyte
from flyte_celery.errors import RuntimeUserError
from tests._services import wait_until
from tests.behaviour.conftest import Runner
from tests.behaviour.programs import caching, caching_body_v1, caching_body_v2


def token(runner: Runner, task: object, *args: object, **run_options: object) -> str:
    value = runner(task, *args, **run_options).outputs()[0]
    assert isinstance(value, str)
    return value


def test_auto_reuses_the_result_across_runs(runner: Runner) -> None:
    assert token(runner, caching.auto_stamp, 1) == token(runner, caching.auto_stamp, 1)


def test_auto_keys_on_inputs(runner: Runner) -> None:
    assert token(runner, caching.auto_stamp, 1) != token(runner, caching.auto_stamp, 2)


def test_cached_child_is_reused_across_runs(runner: Runner) -> None:
    assert token(runner, caching.call_auto_stamp, 3) == token(runner, caching.call_auto_stamp, 3)


def test_cached_child_called_twice_in_one_run_executes_once(runner: Runner) -> None:
    first, second = runner(caching.stamp_twice, 4).outputs()[0]

    assert first == second


@pytest.mark.parametrize("task", [caching.disabled_stamp, caching.default_stamp], ids=["disable", "default"])
def test_disabled_or_default_executes_every_time(runner: Runner, task: object) -> None:
    assert token(runner, task, 1) != token(runner, task, 1)


def test_environment_level_cache_applies_to_its_tasks(runner: Runner) -> None:
    assert token(runner, caching.env_level_stamp, 1) == token(runner, caching.env_level_stamp, 1)


@pytest.mark.parametrize("alias", ["enable", "enabled", "on", "true", "yes"])
def test_aliases_of_auto_cache(runner: Runner, alias: str) -> None:
    task = caching.default_stamp.override(cache=alias)

    assert token(runner, task, 1) == token(runner, task, 1)


@pytest.mark.parametrize("alias", ["off", "false", "no", "none"])
def test_aliases_of_disable_do_not_cache(runner: Runner, alias: str) -> None:
    task = caching.auto_stamp.override(cache=alias)

    assert token(runner, task, 1) != token(runner, task, 1)


def test_unknown_cache_behaviour_is_rejected() -> None:
    with pytest.raises(ValueError):
        flyte.Cache("sometimes")  # type: ignore[arg-type]


def test_override_behaviour_is_read_back(runner: Runner) -> None:
    assert token(runner, caching.override_stamp, 1) == token(runner, caching.override_stamp, 1)


def test_changing_version_override_invalidates_and_each_version_keeps_its_entry(runner: Runner) -> None:
    v2 = caching.override_stamp.override(cache=flyte.Cache("override", version_override="v2"))

    first_v1 = token(runner, caching.override_stamp, 1)
    first_v2 = token(runner, v2, 1)

    assert first_v1 != first_v2
    assert token(runner, caching.override_stamp, 1) == first_v1
    assert token(runner, v2, 1) == first_v2


def test_salt_starts_a_fresh_namespace(runner: Runner) -> None:
    salted = caching.auto_stamp.override(cache=flyte.Cache("auto", salt="fresh"))

    assert token(runner, caching.auto_stamp, 1) != token(runner, salted, 1)


def test_function_body_change_is_a_new_version(runner: Runner) -> None:
    assert caching_body_v1.body_stamp.name == caching_body_v2.body_stamp.name
    first = token(runner, caching_body_v1.body_stamp, 1)

    assert token(runner, caching_body_v1.body_stamp, 1) == first
    assert token(runner, caching_body_v2.body_stamp, 1).startswith("v2:")


def test_ignored_inputs_are_left_out_of_the_key(runner: Runner) -> None:
    first = token(runner, caching.ignoring_stamp, 1, "note one")

    assert token(runner, caching.ignoring_stamp, 1, "note two") == first
    assert token(runner, caching.ignoring_stamp, 2, "note one") != first


def test_overwrite_cache_executes_again_and_the_next_run_gets_the_new_value(runner: Runner) -> None:
    original = token(runner, caching.call_auto_stamp, 1)
    rewritten = token(runner, caching.call_auto_stamp, 1, overwrite_cache=True)

    assert rewritten != original
    assert token(runner, caching.call_auto_stamp, 1) == rewritten


def test_disable_run_cache_does_not_read(runner: Runner) -> None:
    cached = token(runner, caching.call_auto_stamp, 1)

    assert token(runner, caching.call_auto_stamp, 1, disable_run_cache=True) != cached
    assert token(runner, caching.call_auto_stamp, 1) == cached


def test_disable_run_cache_does_not_write(runner: Runner) -> None:
    uncached = token(runner, caching.call_auto_stamp, 1, disable_run_cache=True)
    later = token(runner, caching.call_auto_stamp, 1)

    assert later != uncached
    assert token(runner, caching.call_auto_stamp, 1) == later


def test_project_domain_scope_separates_projects(runner: Runner) -> None:
    scoped = {"cache_lookup_scope": "project-domain", "domain": "dev"}
    in_a = token(runner, caching.auto_stamp, 1, project="project-a", **scoped)

    assert token(runner, caching.auto_stamp, 1, project="project-b", **scoped) != in_a
    assert token(runner, caching.auto_stamp, 1, project="project-a", **scoped) == in_a


def test_project_domain_scope_separates_domains(runner: Runner) -> None:
    scoped = {"cache_lookup_scope": "project-domain", "project": "p"}

    assert token(runner, caching.auto_stamp, 1, domain="dev", **scoped) != token(
        runner, caching.auto_stamp, 1, domain="prod", **scoped
    )


def test_global_scope_shares_entries_across_projects(runner: Runner) -> None:
    in_a = token(runner, caching.auto_stamp, 1, project="project-a", domain="dev")

    assert token(runner, caching.auto_stamp, 1, project="project-b", domain="prod") == in_a


def test_unknown_cache_lookup_scope_is_rejected() -> None:
    with pytest.raises(ValueError, match="cache_lookup_scope"):
        flyte.with_runcontext(cache_lookup_scope="planet")


def test_failures_are_not_cached(runner: Runner, tmp_path: Path) -> None:
    marker = str(tmp_path / "failed-once")

    with pytest.raises(RuntimeUserError) as failure:
        runner(caching.fails_first_time, marker).outputs()
    assert failure.value.code == "ValueError"

    succeeded = token(runner, caching.fails_first_time, marker)
    assert token(runner, caching.fails_first_time, marker) == succeeded


def test_max_age_limits_which_results_are_reused(runner: Runner) -> None:
    key = secrets.randbelow(10**9)  # runs of other tests and sessions never share this entry
    first = token(runner, caching.short_lived, key)
    assert token(runner, caching.short_lived, key) == first
    # Polled: once the entry is older than max_age (3 s) the task runs again.
    fresh = wait_until(lambda: token(runner, caching.short_lived, key) != first, 15, "the entry to expire")
    assert fresh is True
