"""The read side of the run context: `flyte.ctx()` outside and inside tasks, every field, action names."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest

import flyte_celery as flyte
from tests.behaviour.conftest import CHILD_MODE, Runner
from tests.behaviour.programs import context


def test_ctx_is_none_outside_a_task() -> None:
    assert flyte.ctx() is None


def test_root_action_identity(runner: Runner, run_name: Callable[[str], str]) -> None:
    name = run_name("ctx-run")
    seen = runner(context.describe, name=name, project="proj", domain="dev", org="acme").outputs()[0]

    assert seen["action_name"] == "a0"
    assert seen["task_action_name"] == "a0"
    assert seen["run_name"] == name
    assert (seen["project"], seen["domain"], seen["org"]) == ("proj", "dev", "acme")


def test_project_and_domain_default_to_the_configuration(runner: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYTE_CELERY_RUN_PROJECT", "configured-project")
    monkeypatch.setenv("FLYTE_CELERY_RUN_DOMAIN", "configured-domain")
    flyte.init_from_config()

    configured = runner(context.describe).outputs()[0]
    given = runner(context.describe, project="given-project").outputs()[0]

    assert (configured["project"], configured["domain"]) == ("configured-project", "configured-domain")
    assert (given["project"], given["domain"]) == ("given-project", "configured-domain")


def test_children_inherit_run_identity_with_their_own_action_name(
    runner: Runner, run_name: Callable[[str], str]
) -> None:
    name = run_name("family")
    seen = runner(context.parent_and_child, name=name, project="proj", domain="dev", org="acme").outputs()[0]
    child = seen["child"]

    assert child["run_name"] == name
    assert (child["project"], child["domain"], child["org"]) == ("proj", "dev", "acme")
    assert child["action_name"] not in ("a0", "")
    assert child["task_action_name"] == child["action_name"]


def test_mode_and_in_cluster(runner: Runner, mode: str) -> None:
    seen = runner(context.parent_and_child).outputs()[0]

    assert seen["parent"]["mode"] == mode
    assert seen["parent"]["in_cluster"] is (mode == "remote")
    assert seen["child"]["mode"] == CHILD_MODE[mode]
    assert seen["child"]["in_cluster"] is (CHILD_MODE[mode] == "remote")


def test_version_given_to_the_run_is_seen_everywhere(runner: Runner) -> None:
    seen = runner(context.parent_and_child, version="code-v3").outputs()[0]

    assert seen["parent"]["version"] == "code-v3"
    assert seen["child"]["version"] == "code-v3"


def test_version_without_a_run_version(runner: Runner, mode: str) -> None:
    seen = runner(context.versions).outputs()[0]

    if mode == "local":
        # Flyte's local quirk, kept: with no code bundle, a task's version is its cache version ("" if uncached).
        assert seen == {"cached": "cache-v7", "uncached": ""}
    else:
        # On the fleet every task of the run sees the version of the run's code bundle.
        assert seen["cached"] == seen["uncached"] != ""


def test_storage_paths_given_to_the_run(runner: Runner, tmp_path: Path) -> None:
    raw, base = f"{tmp_path}/raw", f"{tmp_path}/meta"
    seen = runner(context.parent_and_child, raw_data_path=raw, run_base_dir=base).outputs()[0]
    parent, child = seen["parent"], seen["child"]

    assert parent["raw_data_path"] == raw
    assert parent["run_base_dir"] == base
    assert parent["output_path"] == f"{base}/a0"
    assert child["raw_data_path"] == raw
    assert child["run_base_dir"] == base
    assert child["output_path"] == f"{base}/{child['action_name']}"


def test_default_storage_paths_are_per_run(runner: Runner, run_name: Callable[[str], str]) -> None:
    name = run_name("paths-one")
    first = runner(context.describe, name=name).outputs()[0]
    second = runner(context.describe, name=run_name("paths-two")).outputs()[0]

    assert first["run_base_dir"] != second["run_base_dir"]
    assert first["raw_data_path"] != second["raw_data_path"]
    assert name in first["run_base_dir"]
    assert name in first["raw_data_path"]
    assert first["output_path"] == f"{first['run_base_dir']}/a0"


def test_custom_context_and_cache_flags_of_the_run(runner: Runner) -> None:
    seen = runner(context.parent_and_child, custom_context={"team": "red"}, disable_run_cache=True).outputs()[0]

    for view in (seen["parent"], seen["child"]):
        assert view["custom_context"] == {"team": "red"}
        assert view["disable_run_cache"] is True


def test_defaults_of_a_plain_run(runner: Runner) -> None:
    seen = runner(context.describe).outputs()[0]

    assert seen["custom_context"] == {}
    assert seen["disable_run_cache"] is False
    assert seen["attempt_number"] == 0
    assert seen["group"] is None
    assert isinstance(seen["run_start_time"], datetime)
    assert seen["run_start_time"].tzinfo is not None


def test_run_start_time_given_is_what_every_task_sees(runner: Runner) -> None:
    start = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)

    parent_view, child_view = runner(context.start_times, run_start_time=start).outputs()[0]

    assert parent_view == start
    assert child_view == start


def test_sync_task_sees_the_same_context(runner: Runner, run_name: Callable[[str], str]) -> None:
    name = run_name("sync-ctx")
    seen = runner(context.describe_sync, name=name, custom_context={"k": "v"}).outputs()[0]

    assert (seen["action_name"], seen["run_name"]) == ("a0", name)
    assert seen["custom_context"] == {"k": "v"}


def test_group_data_is_the_callers_block_only(runner: Runner) -> None:
    seen = runner(context.parent_and_child).outputs()[0]

    assert seen["parent"]["group"] is None
    assert seen["in_group"]["group"] == "my-group"
    assert seen["after"]["group"] is None
    assert seen["grouped_child"]["group"] is None  # the group belongs to the caller, as in Flyte


def test_grandchildren_get_names_of_their_own(runner: Runner) -> None:
    seen = runner(context.grandparent).outputs()[0]
    names = [
        seen["self"]["action_name"],
        seen["below"]["parent"]["action_name"],
        seen["below"]["child"]["action_name"],
        seen["below"]["grouped_child"]["action_name"],
    ]

    assert names[0] == "a0"
    assert len(set(names)) == len(names)


def test_child_action_names_are_deterministic_across_runs(runner: Runner, run_name: Callable[[str], str]) -> None:
    first = runner(context.child_names, name=run_name("names-one")).outputs()[0]
    second = runner(context.child_names, name=run_name("names-two")).outputs()[0]

    assert first == second


def test_repeated_identical_calls_and_groups_get_distinct_names(runner: Runner) -> None:
    names = runner(context.child_names).outputs()[0]

    assert len(set(names.values())) == 4, names
