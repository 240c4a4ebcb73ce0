"""Starting runs and reading them back: the spec's example, run names, the `Run` handle and its outputs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

import flyte_celery as flyte
from flyte_celery.errors import RunNotFoundError
from tests.behaviour.conftest import Runner
from tests.behaviour.programs import outputs, seed


def test_spec_example_root_doubles_21(runner: Runner, run_name: Callable[[str], str]) -> None:
    name = run_name("my-run")
    run = runner(seed.root, name=name, project="my-project", domain="development")

    assert run.outputs()[0] == 42
    assert run.name == name


def test_spec_inspect_context_string(runner: Runner, mode: str, run_name: Callable[[str], str]) -> None:
    name = run_name("inspect-run")
    run = runner(seed.inspect_context, name=name)

    in_cluster = mode == "remote"
    assert run.outputs()[0] == f"run={name}, action=a0, mode={mode}, in_cluster={in_cluster}"


def test_generated_run_names_are_unique_and_seen_by_tasks(runner: Runner) -> None:
    first = runner(seed.inspect_context)
    second = runner(seed.inspect_context)

    assert first.name
    assert second.name
    assert first.name != second.name
    assert first.outputs()[0].startswith(f"run={first.name}, action=a0,")
    assert second.outputs()[0].startswith(f"run={second.name}, action=a0,")


@pytest.mark.parametrize("bad_name", ["has space", "", "-leading-dash", "x" * 101, "slash/inside"])
def test_invalid_run_name_is_rejected(bad_name: str) -> None:
    with pytest.raises(ValueError, match="name"):
        flyte.with_runcontext(name=bad_name)


def test_run_handle_of_a_finished_run(runner: Runner) -> None:
    # Flyte's local mode names every run "dry-run" and cannot tell its phase; ours are real (a documented difference).
    run = runner(seed.root)

    phase: str = run.phase  # a str enum, as Flyte's
    assert phase == flyte.ActionPhase.SUCCEEDED
    assert phase == "succeeded"
    assert run.done() is True
    assert run.wait() == flyte.ActionPhase.SUCCEEDED
    assert isinstance(run.url, str)
    assert run.url
    assert flyte.Run.get(run.name).name == run.name


def test_unknown_run_is_not_found() -> None:
    with pytest.raises(RunNotFoundError):
        flyte.Run.get("no-such-run-anywhere")


def test_single_output_is_o0(runner: Runner) -> None:
    outs = runner(outputs.double, 4).outputs()

    assert isinstance(outs, tuple)
    assert isinstance(outs, flyte.ActionOutputs)
    assert tuple(outs) == (8,)
    assert outs.o0 == 8
    assert outs.named_outputs == {"o0": 8}


def test_tuple_outputs_are_o0_o1(runner: Runner) -> None:
    outs = runner(outputs.pair, 1).outputs()

    assert tuple(outs) == (2, "1")
    assert (outs.o0, outs.o1) == (2, "1")


def test_namedtuple_outputs_take_the_field_names(runner: Runner) -> None:
    # As Flyte's API documents; Flyte 2.12.1's local mode names them o0, o1 instead.
    outs = runner(outputs.stats, 3).outputs()

    assert tuple(outs) == (30, "n=3")
    assert (outs.total, outs.label) == (30, "n=3")
    assert (outs.o0, outs.o1) == (30, "n=3")  # Flyte's positional names work too
    assert outs.named_outputs == {"total": 30, "label": "n=3"}


def test_no_outputs_is_a_single_none(runner: Runner) -> None:
    assert tuple(runner(outputs.nothing).outputs()) == (None,)


def test_unknown_output_name_raises_attribute_error(runner: Runner) -> None:
    outs = runner(outputs.double, 1).outputs()

    with pytest.raises(AttributeError):
        _ = outs.o1


def test_parent_receives_its_childrens_native_outputs(runner: Runner) -> None:
    # Compared as plain tuples: Flyte hands a parent a NamedTuple output as a plain tuple, we keep the NamedTuple.
    one, named, plain, none = runner(outputs.children_outputs, 2).outputs()

    assert one == 4
    assert tuple(named) == (20, "n=2")
    assert tuple(plain) == (3, "2")
    assert none is None


def test_children_get_copies_of_their_inputs(runner: Runner) -> None:
    assert runner(outputs.pass_a_list_to_a_mutating_child).outputs()[0] == {"mine": [1, 2], "theirs": [1, 2, 99]}


def test_defaults_and_keyword_only_inputs(runner: Runner) -> None:
    assert runner(outputs.with_defaults, 1).outputs()[0] == "1-5-c"


def test_flyte_run_shortcut_uses_the_configured_mode(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    monkeypatch.setenv("FLYTE_CELERY_RUN_MODE", mode)
    flyte.init_from_config()

    run = flyte.run(seed.root)
    run.wait()

    async def main() -> flyte.Run:
        started = await flyte.run.aio(outputs.double, 5)
        await started.wait.aio()
        return started

    assert run.outputs()[0] == 42
    assert asyncio.run(main()).outputs()[0] == 10


def test_run_aio_from_async_code(mode: str) -> None:
    async def main() -> list[int]:
        runs = [await flyte.with_runcontext(mode=mode).run.aio(outputs.double, n) for n in (1, 2)]
        for run in runs:
            await run.wait.aio()
        return [(await run.outputs.aio())[0] for run in runs]

    assert asyncio.run(main()) == [2, 4]


def test_dry_run_checks_everything_and_runs_nothing(mode: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    bundle_dir = tmp_path / "bundle"
    run = flyte.with_runcontext(mode=mode, dry_run=True, copy_bundle_to=str(bundle_dir)).run(outputs.touch, str(marker))

    assert run.phase == flyte.ActionPhase.QUEUED
    with pytest.raises(RuntimeError, match="dry run"):
        run.outputs()
    assert not marker.exists()
    if mode != "local":  # the Celery modes build the code bundle, and copy it where asked
        assert [p.suffix for p in bundle_dir.iterdir()] == [".pkl"]


def test_dry_run_still_rejects_bad_arguments(mode: str) -> None:
    with pytest.raises(TypeError):
        flyte.with_runcontext(mode=mode, dry_run=True).run(outputs.touch)
