from __future__ import annotations

import inspect
import pickle
from collections.abc import Callable

import pytest

from flyte_celery import errors
from flyte_celery.errors import (
    BaseRuntimeError,
    ConfigError,
    CustomError,
    InitializationError,
    MaxRuntimeExceededError,
    MessageDecodeError,
    NonRecoverableError,
    RunAlreadyExistsError,
    RunOptionError,
    RuntimeDataValidationError,
    RuntimeSystemError,
    RuntimeUserError,
    TaskTimeoutError,
    UnsafePayloadError,
)

# Every exception class that flyte 2.12.1 defines in flyte/errors.py, minus the documented exclusions (the
# AppleSilicon* and GPUFault* families), listed from /work/flyte-venv/lib/python3.11/site-packages/flyte/errors.py.
# Hard-coded so this test does not need the Flyte install. Value: the class's direct Flyte base.
FLYTE_ERROR_BASES = {
    "ActionAbortedError": "RuntimeUserError",
    "ActionNotFoundError": "RuntimeError",
    "BaseRuntimeError": "RuntimeError",
    "CodeBundleError": "RuntimeUserError",
    "ConditionAlreadyExistsError": "RuntimeUserError",
    "ConditionFailedError": "RuntimeUserError",
    "ConditionNotFoundError": "RuntimeUserError",
    "ConditionTimedoutError": "RuntimeUserError",
    "CustomError": "RuntimeUserError",
    "DeadlineExceededError": "TaskTimeoutError",
    "DeploymentError": "RuntimeUserError",
    "ImageBuildError": "RuntimeUserError",
    "ImagePullBackOffError": "RuntimeUserError",
    "InitializationError": "BaseRuntimeError",
    "InlineIOMaxBytesBreached": "RuntimeUserError",
    "InvalidImageNameError": "RuntimeUserError",
    "InvalidPackageError": "RuntimeUserError",
    "LogsNotYetAvailableError": "BaseRuntimeError",
    "MaxQueuedTimeExceededError": "TaskTimeoutError",
    "MaxRuntimeExceededError": "TaskTimeoutError",
    "ModuleLoadError": "RuntimeUserError",
    "NonRecoverableError": "RuntimeUserError",
    "NotInTaskContextError": "RuntimeUserError",
    "OOMError": "RuntimeUserError",
    "OnlyAsyncIOSupportedError": "RuntimeUserError",
    "ParameterMaterializationError": "RuntimeUserError",
    "PrimaryContainerNotFoundError": "RuntimeUserError",
    "RemoteTaskNotFoundError": "RuntimeUserError",
    "RemoteTaskUsageError": "RuntimeUserError",
    "ResourceExhaustedError": "SlowDownError",
    "RestrictedTypeError": "RuntimeUserError",
    "RetriesExhaustedError": "RuntimeUserError",
    "RuntimeDataValidationError": "RuntimeUserError",
    "RuntimeSystemError": "BaseRuntimeError",
    "RuntimeUnknownError": "BaseRuntimeError",
    "RuntimeUserError": "BaseRuntimeError",
    "SlowDownError": "RuntimeUserError",
    "SyncTaskCallInAsyncContextError": "RuntimeUserError",
    "TaskInterruptedError": "RuntimeUserError",
    "TaskTimeoutError": "RuntimeUserError",
    "TraceDoesNotAllowNestedTasksError": "RuntimeUserError",
    "UnionRpcError": "RuntimeSystemError",
}

# (code, kind) that Flyte 2.12.1 gives the classes constructed from a message alone (same source as above).
FLYTE_MESSAGE_ONLY_CODES = {
    "ActionAbortedError": ("ActionAbortedError", "user"),
    "CodeBundleError": ("CodeBundleError", "user"),
    "ConditionAlreadyExistsError": ("ConditionAlreadyExistsError", "user"),
    "ConditionFailedError": ("ConditionFailedError", "user"),
    "ConditionNotFoundError": ("ConditionNotFoundError", "user"),
    "ConditionTimedoutError": ("ConditionTimedoutError", "user"),
    "DeadlineExceededError": ("DeadlineExceededError", "user"),
    "DeploymentError": ("DeploymentError", "user"),
    "ImageBuildError": ("ImageBuildError", "user"),
    "InlineIOMaxBytesBreached": ("InlineIOMaxBytesBreached", "user"),
    "LogsNotYetAvailableError": ("LogsNotYetAvailable", "system"),
    "MaxQueuedTimeExceededError": ("MaxQueuedTimeExceededError", "user"),
    "MaxRuntimeExceededError": ("MaxRuntimeExceededError", "user"),
    "ModuleLoadError": ("ModuleLoadError", "user"),
    "OnlyAsyncIOSupportedError": ("OnlyAsyncIOSupportedError", "user"),
    "ParameterMaterializationError": ("ParameterMaterializationError", "user"),
    "RemoteTaskNotFoundError": ("RemoteTaskNotFoundError", "user"),
    "RemoteTaskUsageError": ("RemoteTaskUsageError", "user"),
    "ResourceExhaustedError": ("SlowDownError", "user"),
    "RestrictedTypeError": ("RestrictedTypeUsage", "user"),
    "SlowDownError": ("SlowDownError", "user"),
    "SyncTaskCallInAsyncContextError": ("SyncTaskCallInAsyncContextError", "user"),
    "TraceDoesNotAllowNestedTasksError": ("TraceDoesNotAllowNestedTasksError", "user"),
}

_CODE_MESSAGE_WORKER = [
    "ImagePullBackOffError",
    "InvalidImageNameError",
    "NotInTaskContextError",
    "OOMError",
    "PrimaryContainerNotFoundError",
    "RetriesExhaustedError",
    "RuntimeSystemError",
    "RuntimeUnknownError",
    "RuntimeUserError",
    "TaskInterruptedError",
    "UnionRpcError",
]


def _sample(name: str, *args: object) -> Callable[[], BaseException]:
    return lambda: getattr(errors, name)(*args)


# One instance of every exception class we export, built with its own constructor.
SAMPLES: dict[str, Callable[[], BaseException]] = {
    **{name: _sample(name, "SomeCode", "it broke", "worker-1") for name in _CODE_MESSAGE_WORKER},
    **{name: _sample(name, "it broke") for name in FLYTE_MESSAGE_ONLY_CODES},
    "ActionNotFoundError": lambda: errors.ActionNotFoundError("no action a1"),
    "BaseRuntimeError": lambda: BaseRuntimeError("SomeCode", "unknown", "it broke", "w", traceback_text="Traceback"),
    "ConfigError": lambda: ConfigError("must be a URL", key="redis.url"),
    "CustomError": lambda: CustomError("ValueError", "bad value"),
    "InitializationError": lambda: InitializationError("NotInitialized", "user", "call init() first"),
    "InvalidPackageError": lambda: errors.InvalidPackageError("curlx", "E: Unable to locate package curlx"),
    "MessageDecodeError": lambda: MessageDecodeError("not a dict", field="context", raw=b"\x80\x04junk"),
    "NonRecoverableError": lambda: NonRecoverableError("give up", code="GiveUp"),
    "RunAlreadyExistsError": lambda: RunAlreadyExistsError("nightly"),
    "RunNotFoundError": lambda: errors.RunNotFoundError("nightly"),
    "RunOptionError": lambda: RunOptionError("max_action_concurrency", "must be 0 or >= 2, got 1"),
    "RuntimeDataValidationError": lambda: RuntimeDataValidationError("x", ValueError("not an int"), "my_task"),
    "TaskTimeoutError": lambda: TaskTimeoutError("too slow"),
    "UnsafePayloadError": lambda: UnsafePayloadError("signature mismatch"),
    "UnknownSigningKeyError": lambda: errors.UnknownSigningKeyError("0badc0de", ("1234abcd", "5678ef01"), "message"),
    "RunLostError": lambda: errors.RunLostError("nightly"),
    "StorageError": lambda: errors.StorageError("s3://bucket/key", "not_found", "no such object", "read"),
}


def _exported_exception_names() -> set[str]:
    return {
        name
        for name in errors.__all__
        if inspect.isclass(getattr(errors, name)) and issubclass(getattr(errors, name), BaseException)
    }


def test_every_flyte_error_class_exists() -> None:
    missing = sorted(name for name in FLYTE_ERROR_BASES if name not in errors.__all__ or not hasattr(errors, name))
    assert missing == []


@pytest.mark.parametrize("name", sorted(FLYTE_ERROR_BASES))
def test_flyte_error_classes_keep_flyte_bases(name: str) -> None:
    base_name = FLYTE_ERROR_BASES[name]
    base = RuntimeError if base_name == "RuntimeError" else getattr(errors, base_name)
    assert issubclass(getattr(errors, name), base)


def test_action_not_found_is_still_a_runtime_error() -> None:
    # Flyte derives it from RuntimeError directly; ours joins the hierarchy, which keeps `except RuntimeError` working.
    assert issubclass(errors.ActionNotFoundError, RuntimeError)
    assert issubclass(errors.ActionNotFoundError, RuntimeUserError)


@pytest.mark.parametrize("name", sorted(FLYTE_MESSAGE_ONLY_CODES))
def test_message_only_errors_have_flyte_codes(name: str) -> None:
    err = getattr(errors, name)("it broke")
    assert (err.code, err.kind) == FLYTE_MESSAGE_ONLY_CODES[name]
    assert str(err) == "it broke"


@pytest.mark.parametrize(
    ("cls", "kind"),
    [(errors.RuntimeUserError, "user"), (errors.RuntimeSystemError, "system"), (errors.RuntimeUnknownError, "unknown")],
)
def test_family_sets_kind(cls: Callable[[str, str, str], BaseRuntimeError], kind: str) -> None:
    err = cls("KeyError", "'k'", "worker-7")
    assert (err.code, err.kind, err.worker, str(err)) == ("KeyError", kind, "worker-7", "'k'")


def test_samples_cover_every_exported_exception() -> None:
    assert set(SAMPLES) == _exported_exception_names()


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_pickle_round_trip_keeps_type_message_and_attributes(name: str) -> None:
    err = SAMPLES[name]()
    if isinstance(err, BaseRuntimeError):
        err.with_context(run_name="r1", action_name="a7", task_name="env.t", traceback_text="Traceback: boom")
    else:
        err.extra = "kept"  # type: ignore[attr-defined]

    copy = pickle.loads(pickle.dumps(err))

    assert type(copy) is type(err)
    assert str(copy) == str(err)
    assert copy.args == err.args
    assert vars(copy) == vars(err)


def test_pickle_keeps_context_attributes() -> None:
    err = RuntimeUserError("ZeroDivisionError", "division by zero", "w2", traceback_text="Traceback ...")
    err.with_context(run_name="run-1", action_name="abc", task_name="env.divide")
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.code, copy.kind, copy.worker) == ("ZeroDivisionError", "user", "w2")
    assert (copy.run_name, copy.action_name, copy.task_name) == ("run-1", "abc", "env.divide")
    assert copy.traceback_text == "Traceback ..."


def test_str_is_the_message_and_traceback_is_separate() -> None:
    err = RuntimeUserError("ValueError", "boom", traceback_text='Traceback (most recent call last):\n  File "x"')
    assert str(err) == "boom"
    assert err.traceback_text is not None
    assert err.traceback_text.startswith("Traceback")


def test_context_attributes_default_to_none_and_are_settable() -> None:
    err = RuntimeSystemError("Lost", "worker lost")
    assert (err.traceback_text, err.run_name, err.action_name, err.task_name) == (None, None, None, None)
    err.traceback_text = "tb"
    assert err.traceback_text == "tb"


def test_with_context_sets_given_fields_and_keeps_others() -> None:
    err = RuntimeUserError("E", "m")
    assert err.with_context(run_name="r", task_name="t") is err
    err.with_context(action_name="a", run_name=None)
    assert (err.run_name, err.action_name, err.task_name) == ("r", "a", "t")


def test_custom_error_from_raised_exception_keeps_type_name_cause_and_traceback() -> None:
    def failing() -> None:
        raise ValueError("bad input")

    try:
        failing()
    except ValueError as exc:
        err = CustomError.from_exception(exc)
    assert (err.code, str(err), err.kind) == ("ValueError", "bad input", "user")
    assert isinstance(err.__cause__, ValueError)
    assert err.traceback_text is not None
    assert "in failing" in err.traceback_text
    assert "ValueError: bad input" in err.traceback_text


def test_custom_error_from_unraised_exception_has_no_traceback() -> None:
    err = CustomError.from_exception(KeyError("k"))
    assert (err.code, err.traceback_text) == ("KeyError", None)


def test_arithmetic_on_an_error_value_raises_the_error() -> None:
    # flyte.map(return_exceptions=True) returns errors as values; summing them must surface the real failure.
    err = RuntimeUserError("ValueError", "child failed")
    with pytest.raises(RuntimeUserError, match="child failed"):
        sum([1, err])  # type: ignore[list-item]
    with pytest.raises(RuntimeUserError):
        err * 2


def test_timeout_errors() -> None:
    assert TaskTimeoutError("slow").code == "TaskTimeoutError"
    assert TaskTimeoutError("slow", code="Custom").code == "Custom"
    err = MaxRuntimeExceededError("ran 5s")
    assert isinstance(err, TaskTimeoutError)
    assert (err.code, err.kind, err.worker) == ("MaxRuntimeExceededError", "user", None)


def test_non_recoverable_error_code() -> None:
    assert NonRecoverableError("stop").code == "NonRecoverableError"
    assert NonRecoverableError("stop", code="Fatal").code == "Fatal"


def test_data_validation_error_names_variable_and_task() -> None:
    err = RuntimeDataValidationError("x", TypeError("not an int"), "my_task")
    assert (err.code, err.var, err.task_name) == ("DataValidationError", "x", "my_task")
    assert "'x'" in str(err)
    assert "my_task" in str(err)
    assert "not an int" in str(err)
    assert RuntimeDataValidationError("y", "bad").task_name is None


def test_invalid_package_error_keeps_package() -> None:
    err = errors.InvalidPackageError("curlx", "E: nope")
    assert (err.package_name, err.original_error) == ("curlx", "E: nope")
    assert "curlx" in str(err)


def test_config_error_names_the_key() -> None:
    err = ConfigError("must be a redis:// URL", key="redis.url")
    assert isinstance(err, InitializationError)
    assert (err.key, err.code, err.kind) == ("redis.url", "ConfigError", "user")
    assert str(err) == "redis.url: must be a redis:// URL"
    assert str(ConfigError("redis.url is required", key="redis.url")) == "redis.url is required"
    assert ConfigError("cannot read config.yaml").key is None


def test_message_decode_error_keeps_field_and_raw_bytes() -> None:
    err = MessageDecodeError("expected an object", field="context.action", raw=b"\x00\x01")
    assert isinstance(err, RuntimeSystemError)
    assert (err.field, err.raw, err.kind, err.code) == ("context.action", b"\x00\x01", "system", "MessageDecodeError")
    assert "context.action" in str(err)
    assert MessageDecodeError("not JSON").field is None


def test_unsafe_payload_error_is_a_system_error() -> None:
    err = UnsafePayloadError("payload is not signed")
    assert (err.kind, err.code, str(err)) == ("system", "UnsafePayloadError", "payload is not signed")


def test_unknown_signing_key_error_names_the_key_ids() -> None:
    err = errors.UnknownSigningKeyError("0badc0de", ("1234abcd", "5678ef01"), "result of action r/a0")
    assert isinstance(err, UnsafePayloadError)
    assert (err.kind, err.code) == ("system", "UnknownSigningKeyError")
    assert (err.key_id, err.accepted_ids) == ("0badc0de", ("1234abcd", "5678ef01"))
    for part in ("result of action r/a0", "'0badc0de'", "1234abcd, 5678ef01", "security.accepted_keys"):
        assert part in str(err)
    copy = pickle.loads(pickle.dumps(err))
    assert (type(copy), copy.key_id, copy.accepted_ids, copy.code) == (
        errors.UnknownSigningKeyError,
        "0badc0de",
        ("1234abcd", "5678ef01"),
        "UnknownSigningKeyError",
    )


def test_run_lost_error_names_the_run() -> None:
    err = errors.RunLostError("nightly")
    assert isinstance(err, RuntimeSystemError)
    assert (err.kind, err.code, err.run_name) == ("system", "RunLostError", "nightly")
    assert "nightly" in str(err)
    assert str(errors.RunLostError("r", "custom message")) == "custom message"


def test_run_errors_carry_the_run_name() -> None:
    err = RunAlreadyExistsError("nightly")
    assert isinstance(err, RuntimeUserError)
    assert err.run_name == "nightly"
    assert "nightly" in str(err)
    assert str(errors.RunNotFoundError("r", "custom message")) == "custom message"


def test_run_option_error_is_a_value_error_naming_the_option() -> None:
    err = RunOptionError("copy_style", "'custom' is not allowed")
    assert isinstance(err, ValueError)
    assert not isinstance(err, BaseRuntimeError)
    assert err.option == "copy_style"
    assert str(err).startswith("copy_style")


def test_all_is_sorted_and_lists_every_public_name() -> None:
    assert errors.__all__ == sorted(errors.__all__)
    public_classes = {
        name
        for name, obj in vars(errors).items()
        if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == errors.__name__
    }
    assert {name for name in public_classes if not name.startswith("_")} == _exported_exception_names()
