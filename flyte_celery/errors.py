"""Errors raised by flyte-celery, with the class names and constructors of Flyte 2's ``flyte.errors``.

A failing child action surfaces in its parent as one of these (usually ``RuntimeUserError`` whose ``code`` is the
original exception's type name); ``traceback_text`` then holds the child's formatted traceback, and ``run_name``,
``action_name`` and ``task_name`` say where it happened. Every error pickles with all its attributes, so it can cross
a process or a Celery message. Classes marked ``+`` are flyte-celery additions; every other name is Flyte's.

Hierarchy::

    RuntimeError
    └── BaseRuntimeError                 code, kind, worker, traceback_text, run_name, action_name, task_name
        ├── InitializationError
        │   └── ConfigError +            key
        ├── LogsNotYetAvailableError
        ├── RuntimeSystemError
        │   ├── UnionRpcError
        │   ├── MessageDecodeError +     field, raw
        │   ├── RunLostError +           run_name
        │   ├── StorageError +           url, reason, action
        │   └── UnsafePayloadError +
        │       └── UnknownSigningKeyError + key_id, accepted_ids
        ├── RuntimeUnknownError
        └── RuntimeUserError
            ├── ActionAbortedError
            ├── ActionNotFoundError      (Flyte derives it from RuntimeError directly)
            ├── CodeBundleError
            ├── ConditionAlreadyExistsError
            ├── ConditionFailedError
            ├── ConditionNotFoundError
            ├── ConditionTimedoutError
            ├── CustomError
            ├── DeploymentError
            ├── ImageBuildError
            ├── ImagePullBackOffError
            ├── InlineIOMaxBytesBreached
            ├── InvalidImageNameError
            ├── InvalidPackageError      package_name, original_error
            ├── ModuleLoadError
            ├── NonRecoverableError
            ├── NotInTaskContextError
            ├── OnlyAsyncIOSupportedError
            ├── OOMError
            ├── ParameterMaterializationError
            ├── PrimaryContainerNotFoundError
            ├── RemoteTaskNotFoundError
            ├── RemoteTaskUsageError
            ├── RestrictedTypeError
            ├── RetriesExhaustedError
            ├── RunAlreadyExistsError +
            ├── RunNotFoundError +
            ├── RuntimeDataValidationError   var
            ├── SlowDownError
            │   └── ResourceExhaustedError
            ├── SyncTaskCallInAsyncContextError
            ├── TaskInterruptedError
            ├── TaskTimeoutError
            │   ├── DeadlineExceededError
            │   ├── MaxQueuedTimeExceededError
            │   └── MaxRuntimeExceededError
            └── TraceDoesNotAllowNestedTasksError
    ValueError
    └── RunOptionError +                 option

Not provided: Flyte's ``AppleSilicon*`` and ``GPUFault*`` families (device faults reported by Flyte's backend).
"""

from __future__ import annotations

import traceback
from typing import Any, ClassVar, Literal, NoReturn, TypeVar

ErrorKind = Literal["system", "unknown", "user"]
StorageErrorReason = Literal[
    "not_found",
    "no_bucket",
    "unreachable",
    "timeout",
    "credentials",
    "permission",
    "missing_extra",
    "unknown_protocol",
    "other",
]


_E = TypeVar("_E", bound="BaseRuntimeError")
_C = TypeVar("_C", bound="CustomError")


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> BaseException:
    # Constructor signatures differ per class, so unpickling bypasses __init__ and restores the state directly.
    err = cls.__new__(cls)
    err.args = args
    err.__dict__.update(state)
    return err


class BaseRuntimeError(RuntimeError):
    """Raised when a task execution fails; the root of every runtime error.

    ``str(err)`` is the message. The context attributes are ``None`` until the framework fills them in, when the
    error crosses an action boundary.

    Args:
        code: A short name for the failure, e.g. the original exception's type name.
        kind: Who is to blame: ``"user"``, ``"system"`` or ``"unknown"``.
        root_cause_message: The message.
        worker: The worker the failure happened on, if known.
        traceback_text: The formatted traceback of the failure in a child action, if any.
    """

    def __init__(
        self,
        code: str,
        kind: ErrorKind,
        root_cause_message: str,
        worker: str | None = None,
        *,
        traceback_text: str | None = None,
    ) -> None:
        super().__init__(root_cause_message)
        self.code = code
        self.kind: ErrorKind = kind
        self.worker = worker
        self.traceback_text = traceback_text
        self.run_name: str | None = None
        self.action_name: str | None = None
        self.task_name: str | None = None

    def with_context(
        self: _E,
        *,
        run_name: str | None = None,
        action_name: str | None = None,
        task_name: str | None = None,
        traceback_text: str | None = None,
    ) -> _E:
        """Record where the error happened; ``None`` leaves a field unchanged. Returns ``self``."""
        if run_name is not None:
            self.run_name = run_name
        if action_name is not None:
            self.action_name = action_name
        if task_name is not None:
            self.task_name = task_name
        if traceback_text is not None:
            self.traceback_text = traceback_text
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))

    def _reraise(self, *_args: object) -> NoReturn:
        # flyte.map(return_exceptions=True) hands errors back as values; arithmetic on one should raise the real
        # failure rather than an unrelated TypeError, as in Flyte.
        raise self

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _reraise
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = _reraise


class InitializationError(BaseRuntimeError):
    """Raised when flyte is used before it is initialised, or cannot be initialised."""


class RuntimeSystemError(BaseRuntimeError):
    """Raised when a task fails because of the system running it rather than the user's code."""

    def __init__(
        self, code: str, message: str, worker: str | None = None, *, traceback_text: str | None = None
    ) -> None:
        super().__init__(code, "system", message, worker, traceback_text=traceback_text)


class UnionRpcError(RuntimeSystemError):
    """Raised when a call to the control plane fails."""


class RuntimeUserError(BaseRuntimeError):
    """Raised when a task fails because of an error in the user's code."""

    def __init__(
        self, code: str, message: str, worker: str | None = None, *, traceback_text: str | None = None
    ) -> None:
        super().__init__(code, "user", message, worker, traceback_text=traceback_text)


class RuntimeUnknownError(BaseRuntimeError):
    """Raised when a task fails and the cause cannot be attributed to the user or the system."""

    def __init__(
        self, code: str, message: str, worker: str | None = None, *, traceback_text: str | None = None
    ) -> None:
        super().__init__(code, "unknown", message, worker, traceback_text=traceback_text)


class OOMError(RuntimeUserError):
    """Raised when a task runs out of memory."""


class TaskInterruptedError(RuntimeUserError):
    """Raised when a task's execution is interrupted (e.g. its worker is preempted)."""


class PrimaryContainerNotFoundError(RuntimeUserError):
    """Raised when a task's primary container cannot be found."""


class RetriesExhaustedError(RuntimeUserError):
    """Raised when a task still fails after all its retries."""


class InvalidImageNameError(RuntimeUserError):
    """Raised when an image name is invalid."""


class ImagePullBackOffError(RuntimeUserError):
    """Raised when an image cannot be pulled."""


class NotInTaskContextError(RuntimeUserError):
    """Raised when task-only functionality is used outside a task."""


class TaskTimeoutError(RuntimeUserError):
    """Raised when a task exceeds one of its ``Timeout`` bounds (the subclasses say which, when known)."""

    def __init__(self, message: str, code: str = "TaskTimeoutError") -> None:
        super().__init__(code, message)


class MaxQueuedTimeExceededError(TaskTimeoutError):
    """Raised when a task waits longer than ``Timeout.max_queued_time`` before it starts."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="MaxQueuedTimeExceededError")


class MaxRuntimeExceededError(TaskTimeoutError):
    """Raised when one attempt of a task runs longer than ``Timeout.max_runtime``."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="MaxRuntimeExceededError")


class DeadlineExceededError(TaskTimeoutError):
    """Raised when a task has not finished within ``Timeout.deadline``, counted across all attempts."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="DeadlineExceededError")


class CustomError(RuntimeUserError):
    """Raised when user code raises an exception of its own; ``code`` is that exception's type name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)

    @classmethod
    def from_exception(cls: type[_C], e: BaseException) -> _C:
        """Wrap ``e``: its type name becomes ``code``, its message the message, its traceback ``traceback_text``."""
        err = cls(type(e).__name__, str(e))
        err.__cause__ = e
        if e.__traceback__ is not None:
            err.traceback_text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        return err


class _CodedUserError(RuntimeUserError):
    # Shared shape of Flyte's user errors whose constructor takes only a message and whose code is fixed.
    CODE: ClassVar[str]

    def __init_subclass__(cls, code: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.CODE = code

    def __init__(self, message: str) -> None:
        super().__init__(self.CODE, message)


class ActionNotFoundError(_CodedUserError, code="ActionNotFoundError"):
    """Raised when an action that does not exist is looked up."""


class ConditionTimedoutError(_CodedUserError, code="ConditionTimedoutError"):
    """Raised when a condition is not signalled within its timeout."""


class ConditionAlreadyExistsError(_CodedUserError, code="ConditionAlreadyExistsError"):
    """Raised when a condition that already exists within the action is created again."""


class ConditionFailedError(_CodedUserError, code="ConditionFailedError"):
    """Raised when a condition fails while it is processed."""


class ConditionNotFoundError(_CodedUserError, code="ConditionNotFoundError"):
    """Raised when a condition that does not exist is looked up."""


class RemoteTaskNotFoundError(_CodedUserError, code="RemoteTaskNotFoundError"):
    """Raised when a deployed task that does not exist is referenced."""


class RemoteTaskUsageError(_CodedUserError, code="RemoteTaskUsageError"):
    """Raised when a deployed-task reference is used where it cannot run (e.g. in local mode)."""


class DeploymentError(_CodedUserError, code="DeploymentError"):
    """Raised when deploying a task fails or its preconditions are not met."""


class ImageBuildError(_CodedUserError, code="ImageBuildError"):
    """Raised when an image cannot be built."""


class ModuleLoadError(_CodedUserError, code="ModuleLoadError"):
    """Raised when a module cannot be loaded, because it is missing or does not import."""


class InlineIOMaxBytesBreached(_CodedUserError, code="InlineIOMaxBytesBreached"):
    """Raised when a task's inputs or outputs exceed the inline size limit (``max_inline_io_bytes``)."""


class ActionAbortedError(_CodedUserError, code="ActionAbortedError"):
    """Raised in a parent when one of its child actions was aborted from outside."""


class SlowDownError(_CodedUserError, code="SlowDownError"):
    """Raised when the service asks the caller to back off."""


class ResourceExhaustedError(SlowDownError):
    """Raised when the service has run out of a resource and asks the caller to back off."""


class OnlyAsyncIOSupportedError(_CodedUserError, code="OnlyAsyncIOSupportedError"):
    """Raised when blocking IO is used where only asyncio IO is supported."""


class ParameterMaterializationError(_CodedUserError, code="ParameterMaterializationError"):
    """Raised when a lazily materialised app parameter cannot be materialised."""


class RestrictedTypeError(_CodedUserError, code="RestrictedTypeUsage"):
    """Raised when a type that is not supported in that position is used (e.g. a one-element tuple output)."""


class CodeBundleError(_CodedUserError, code="CodeBundleError"):
    """Raised when the code bundle cannot be created (e.g. there are no files to bundle)."""


class SyncTaskCallInAsyncContextError(_CodedUserError, code="SyncTaskCallInAsyncContextError"):
    """Raised when a sync task is called blocking (``task(...)``) inside an async task; use ``await task.aio()``."""


class TraceDoesNotAllowNestedTasksError(_CodedUserError, code="TraceDoesNotAllowNestedTasksError"):
    """Raised when a task is called from inside a ``@flyte.trace`` function."""


class LogsNotYetAvailableError(BaseRuntimeError):
    """Raised when the logs of a task are requested before they exist."""

    def __init__(self, message: str) -> None:
        super().__init__("LogsNotYetAvailable", "system", message)


class RuntimeDataValidationError(RuntimeUserError):
    """Raised when a task input or output cannot be serialized or deserialized."""

    def __init__(self, var: str, e: Exception | str, task_name: str = "") -> None:
        where = f"task {task_name!r}, " if task_name else ""
        super().__init__("DataValidationError", f"{where}variable {var!r}: cannot serialize or deserialize: {e}")
        self.var = var
        self.task_name = task_name or None


class InvalidPackageError(RuntimeUserError):
    """Raised when an image asks for a system package that does not exist."""

    def __init__(self, package_name: str, original_error: str) -> None:
        super().__init__(
            "InvalidPackageError", f"system package {package_name!r} does not exist in apt: {original_error}"
        )
        self.package_name = package_name
        self.original_error = original_error


class NonRecoverableError(RuntimeUserError):
    """Raised by user code to fail a task at once, without using its remaining retries."""

    def __init__(self, message: str, code: str = "NonRecoverableError") -> None:
        super().__init__(code, message)


# --- flyte-celery additions -------------------------------------------------------------------------------------


class RunAlreadyExistsError(RuntimeUserError):
    """Raised when a run is started with the name of a run that already exists (flyte-celery addition)."""

    def __init__(self, run_name: str, message: str | None = None) -> None:
        super().__init__("RunAlreadyExistsError", message or f"a run named {run_name!r} already exists")
        self.run_name = run_name


class RunNotFoundError(RuntimeUserError):
    """Raised when a run that does not exist is looked up (flyte-celery addition)."""

    def __init__(self, run_name: str, message: str | None = None) -> None:
        super().__init__("RunNotFoundError", message or f"no run named {run_name!r}")
        self.run_name = run_name


class ConfigError(InitializationError):
    """Raised when a config key is unknown or has a bad value, or a config file is unreadable (flyte-celery addition).

    Args:
        message: What is wrong; prefixed with ``key`` unless it already names it.
        key: The offending key, dotted as in the config file (e.g. ``"redis.url"``), if there is one.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__("ConfigError", "user", f"{key}: {message}" if key and key not in message else message)
        self.key = key


class MessageDecodeError(RuntimeSystemError):
    """Raised when a Celery message cannot be decoded; keeps the ``field`` and ``raw`` bytes (flyte-celery addition)."""

    def __init__(self, message: str, *, field: str | None = None, raw: bytes | None = None) -> None:
        super().__init__("MessageDecodeError", f"{field}: {message}" if field else message)
        self.field = field
        self.raw = raw


class UnsafePayloadError(RuntimeSystemError):
    """Raised when a payload read back from Redis, the broker or storage is unsigned, altered, or bound to another
    place than where it was read; nothing of it is loaded (flyte-celery addition)."""

    def __init__(self, message: str, code: str = "UnsafePayloadError") -> None:
        super().__init__(code, message)


class UnknownSigningKeyError(UnsafePayloadError):
    """Raised when a payload was signed with a key this process does not have: ``key_id`` names it and
    ``accepted_ids`` lists the ids of the keys this process verifies with (flyte-celery addition)."""

    def __init__(self, key_id: str, accepted_ids: tuple[str, ...], what: str) -> None:
        super().__init__(
            f"{what} is signed with key id {key_id!r}, which is not among this process's keys "
            f"({', '.join(accepted_ids)}): set security.signing_key / security.accepted_keys to the fleet's keys",
            code="UnknownSigningKeyError",
        )
        self.key_id = key_id
        self.accepted_ids = accepted_ids


class RunLostError(RuntimeSystemError):
    """Raised when a run's records are gone from Redis while it is waited for, e.g. after Redis restarted empty;
    ``run_name`` names the run (flyte-celery addition)."""

    def __init__(self, run_name: str, message: str | None = None) -> None:
        super().__init__(
            "RunLostError",
            message or f"run {run_name}'s records are gone from Redis (expired, deleted, or Redis restarted empty)",
        )
        self.run_name = run_name


class StorageError(RuntimeSystemError):
    """Raised when reading, writing or listing storage fails.

    Args:
        url: The URL (or local path) the operation was on; kept with any credentials redacted.
        reason: What went wrong, for code that branches on it (e.g. "not_found", "unreachable", "credentials").
        detail: The cause, with what to do about it.
        action: What was being done ("read", "write", "upload to", ...).
    """

    def __init__(self, url: str, reason: StorageErrorReason, detail: str, action: str = "access") -> None:
        from flyte_celery._urls import redact

        shown = redact(url)
        super().__init__("StorageError", f"Cannot {action} {shown}: {detail}")
        self.url = shown
        self.reason: StorageErrorReason = reason
        self.action = action


class RunOptionError(ValueError):
    """Raised when a ``with_runcontext`` option, named by ``option``, has a bad value (flyte-celery addition)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


__all__ = [
    "ActionAbortedError",
    "ActionNotFoundError",
    "BaseRuntimeError",
    "CodeBundleError",
    "ConditionAlreadyExistsError",
    "ConditionFailedError",
    "ConditionNotFoundError",
    "ConditionTimedoutError",
    "ConfigError",
    "CustomError",
    "DeadlineExceededError",
    "DeploymentError",
    "ErrorKind",
    "ImageBuildError",
    "ImagePullBackOffError",
    "InitializationError",
    "InlineIOMaxBytesBreached",
    "InvalidImageNameError",
    "InvalidPackageError",
    "LogsNotYetAvailableError",
    "MaxQueuedTimeExceededError",
    "MaxRuntimeExceededError",
    "MessageDecodeError",
    "ModuleLoadError",
    "NonRecoverableError",
    "NotInTaskContextError",
    "OOMError",
    "OnlyAsyncIOSupportedError",
    "ParameterMaterializationError",
    "PrimaryContainerNotFoundError",
    "RemoteTaskNotFoundError",
    "RemoteTaskUsageError",
    "ResourceExhaustedError",
    "RestrictedTypeError",
    "RetriesExhaustedError",
    "RunAlreadyExistsError",
    "RunLostError",
    "RunNotFoundError",
    "RunOptionError",
    "RuntimeDataValidationError",
    "RuntimeSystemError",
    "RuntimeUnknownError",
    "RuntimeUserError",
    "SlowDownError",
    "StorageError",
    "StorageErrorReason",
    "SyncTaskCallInAsyncContextError",
    "TaskInterruptedError",
    "TaskTimeoutError",
    "TraceDoesNotAllowNestedTasksError",
    "UnionRpcError",
    "UnknownSigningKeyError",
    "UnsafePayloadError",
]
