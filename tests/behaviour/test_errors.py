"""Failures: how user errors surface, retries, non-recoverable errors, timeouts and rejected arguments."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import flyte_celery as flyte
from flyte_celery.errors import (
    DeadlineExceededError,
    NonRecoverableError,
    RunOptionError,
    RuntimeUserError,
    TaskTimeoutError,
)
from tests.behaviour.conftest import Runner
from tests.behaviour.programs import failures, outputs
from tests.behaviour.programs._files import read_lines


def test_parent_catches_child_value_error_as_runtime_user_error(runner: Runner) -> None:
    # Type and code as in Flyte; the child's traceback in traceback_text is ours (Flyte's local mode lacks it).
    seen = runner(failures.catch_child_error, 7).outputs()[0]

    assert seen["type"] == "RuntimeUserError"
    assert seen["is_user_error"] is True
    assert seen["code"] == "ValueError"
    assert "bad value 7" in seen["message"]
    assert "explode_with_value_error" in seen["traceback_text"]
    assert seen["task_name"] == failures.explode_with_value_error.name
    # From the task's own code on, as a Python user reads it: flyte-celery's frames that called it are left out.
    first_frame = seen["traceback_text"].splitlines()[1]
    assert first_frame.startswith(f'  File "{failures.__file__}"'), seen["traceback_text"]
    assert "flyte_celery" not in seen["traceback_text"]


def test_uncaught_root_error_raises_from_the_run(runner: Runner, run_name: Callable[[str], str]) -> None:
    name = run_name("failing-run")
    with pytest.raises(RuntimeUserError) as info:
        runner(failures.explode_with_value_error, 3, name=name).outputs()

    err = info.value
    assert err.code == "ValueError"
    assert err.kind == "user"
    assert "bad value 3" in str(err)
    assert err.run_name == name
    assert err.task_name == failures.explode_with_value_error.name
    assert err.action_name == "a0"
    assert "explode_with_value_error" in (err.traceback_text or "")


def test_uncaught_error_keeps_the_code_and_origin_through_ancestors(runner: Runner) -> None:
    with pytest.raises(RuntimeUserError) as info:
        runner(failures.grandparent_not_catching, 2).outputs()

    err = info.value
    assert err.code == "ValueError"
    assert err.task_name == failures.explode_with_value_error.name
    assert err.action_name not in (None, "a0")
    assert "explode_with_value_error" in (err.traceback_text or "")


def test_user_defined_exception_name_is_the_code(runner: Runner) -> None:
    with pytest.raises(RuntimeUserError) as info:
        runner(failures.explode_with_custom_error).outputs()

    assert info.value.code == "BehaviourError"
    assert "custom failure" in str(info.value)


def test_unserializable_output_is_an_explicit_error(runner: Runner) -> None:
    with pytest.raises(RuntimeUserError) as info:
        runner(outputs.unserializable).outputs()

    assert info.value.code == "UnserializableValueError"


def test_an_unserializable_root_argument_is_the_same_error_in_every_mode(runner: Runner) -> None:
    import threading

    with pytest.raises(RuntimeUserError) as info:
        runner(failures.describe_argument, threading.Lock()).outputs()

    assert info.value.code == "UnserializableValueError"
    assert "inputs of task" in str(info.value)
    assert "lock" in str(info.value)


def test_an_unserializable_child_argument_is_the_same_error_in_every_mode(runner: Runner) -> None:
    with pytest.raises(RuntimeUserError) as info:
        runner(failures.pass_a_lock_to_a_child).outputs()

    assert info.value.code == "UnserializableValueError"
    assert failures.describe_argument.name in str(info.value)


def attempts(log: Path) -> list[int]:
    return [int(line) for line in read_lines(str(log))]


def test_int_retries_succeed_after_a_failure(runner: Runner, tmp_path: Path) -> None:
    log = tmp_path / "attempts"

    assert runner(failures.flaky_int_retries, 1, str(log)).outputs()[0] == 1
    assert attempts(log) == [0, 1]


def test_retry_strategy_with_backoff_succeeds_after_n_failures(runner: Runner, tmp_path: Path) -> None:
    log = tmp_path / "attempts"

    assert runner(failures.flaky_strategy, 3, str(log)).outputs()[0] == 3
    assert attempts(log) == [0, 1, 2, 3]


def test_sync_task_retries(runner: Runner, tmp_path: Path) -> None:
    log = tmp_path / "attempts"

    assert runner(failures.flaky_sync, 2, str(log)).outputs()[0] == 2
    assert attempts(log) == [0, 1, 2]


def test_retries_exhausted_raise_the_last_error(runner: Runner, tmp_path: Path) -> None:
    log = tmp_path / "attempts"

    with pytest.raises(RuntimeUserError) as info:
        runner(failures.flaky_strategy, 10, str(log)).outputs()

    assert info.value.code == "ValueError"
    assert attempts(log) == [0, 1, 2, 3]


def test_no_retries_by_default(runner: Runner, tmp_path: Path) -> None:
    log = tmp_path / "attempts"

    with pytest.raises(RuntimeUserError):
        runner(failures.flaky_no_retries, 1, str(log)).outputs()

    assert attempts(log) == [0]


def test_non_recoverable_error_stops_retries(runner: Runner, tmp_path: Path) -> None:
    log = tmp_path / "attempts"

    with pytest.raises(NonRecoverableError) as info:
        runner(failures.non_recoverable, str(log)).outputs()

    assert info.value.code == "NonRecoverableError"
    assert attempts(log) == [0]


def test_parent_sees_a_childs_non_recoverable_error(runner: Runner, tmp_path: Path) -> None:
    log = tmp_path / "attempts"

    seen = runner(failures.catch_non_recoverable, str(log)).outputs()[0]

    assert seen["type"] == "NonRecoverableError"
    assert seen["code"] == "NonRecoverableError"
    assert attempts(log) == [0]


def test_async_timeout_raises_task_timeout_error(runner: Runner) -> None:
    with pytest.raises(TaskTimeoutError):
        runner(failures.slow_async, failures.LONG_SLEEP_S).outputs()


def test_deadline_raises_task_timeout_error(runner: Runner) -> None:
    with pytest.raises(DeadlineExceededError):
        runner(failures.past_deadline, 1.0).outputs()


def test_parent_catches_a_childs_timeout(runner: Runner) -> None:
    seen = runner(failures.catch_timeout).outputs()[0]

    assert seen["is_user_error"] is True
    assert seen["type"] == "MaxRuntimeExceededError"  # a TaskTimeoutError naming the bound, as in Flyte


def test_timeouts_are_retried(runner: Runner, tmp_path: Path) -> None:
    log = tmp_path / "attempts"

    assert runner(failures.slow_first_attempt, str(log)).outputs()[0] == 1
    assert attempts(log) == [0, 1]


def release_sync_body(tmp_path: Path) -> tuple[str, str]:
    """Paths for `failures.slow_sync`: the file that releases its body, and the file it writes when it ends."""
    return str(tmp_path / "release"), str(tmp_path / "done")


def test_sync_timeout_raises_task_timeout_error(
    runner: Runner,
    mode: str,
    tmp_path: Path,
    thread_exceptions: list[BaseException],
    new_threads_ended: Callable[[], None],
) -> None:
    release, done = release_sync_body(tmp_path)

    with pytest.raises(TaskTimeoutError):
        runner(failures.slow_sync, release, done).outputs()

    if mode == "local":  # the interrupted body ends by itself, before it is released (in-process: observable)
        new_threads_ended()
        assert not Path(done).exists()
    Path(release).touch()  # on a worker, a body that was not interrupted would end now rather than linger


def test_an_interrupted_sync_body_ends_quietly_after_its_run(
    tmp_path: Path, thread_exceptions: list[BaseException], new_threads_ended: Callable[[], None]
) -> None:
    # In-process only (the thread lives in this process), so this test runs in local mode whatever MODES holds.
    release, done = release_sync_body(tmp_path)
    with pytest.raises(TaskTimeoutError):
        flyte.with_runcontext(mode="local").run(failures.slow_sync, release, done)

    new_threads_ended()  # interrupted at its next instruction, without being released

    assert thread_exceptions == []
    assert not Path(done).exists()


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"mode": "nope"}, "mode"),
        ({"custom_context": {"a": 1}}, "custom_context"),
        ({"copy_style": "none"}, "copy_style"),
        ({"max_action_concurrency": 1}, "max_action_concurrency"),
        ({"overwrite_cache": "yes"}, "overwrite_cache"),
        ({"env_vars": {"A": 1}}, "env_vars"),
        ({"no_such_option": True}, "no_such_option"),
    ],
)
def test_bad_run_options_raise_value_error_before_running(options: dict[str, Any], option: str) -> None:
    with pytest.raises(ValueError) as info:
        flyte.with_runcontext(**options)

    assert isinstance(info.value, RunOptionError)
    assert info.value.option == option


def test_copy_style_none_with_a_version_is_accepted() -> None:
    flyte.with_runcontext(copy_style="none", version="v1")


@pytest.mark.parametrize("args", [(1, 2), ()], ids=["too-many", "missing"])
def test_wrong_root_arguments_raise_type_error(runner: Runner, args: tuple[int, ...]) -> None:
    with pytest.raises(TypeError):
        runner(failures.double, *args)


def test_non_task_is_rejected(runner: Runner) -> None:
    with pytest.raises(TypeError):
        runner(print)


def test_wrong_child_arguments_raise_type_error_at_the_call_site(runner: Runner) -> None:
    seen = runner(failures.call_child_with_wrong_arguments).outputs()[0]

    assert seen["type"] == "TypeError"
