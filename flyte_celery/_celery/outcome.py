"""An action's outcome as sealed bytes, bound to its run and action: its value, or the error it failed with (both
pickled by value). A result copied to another action's key fails its check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import cloudpickle

from flyte_celery._signing import KeyRing
from flyte_celery._values import UNSERIALIZABLE_CODE, loads_value
from flyte_celery.errors import BaseRuntimeError, RuntimeSystemError, RuntimeUserError

RESULT_PURPOSE: Final = "result"


@dataclass(frozen=True)
class Outcome:
    """What a finished action produced: `value` on success, `error` on failure."""

    value: Any = None
    error: BaseRuntimeError | None = None

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def encode_outcome(keys: KeyRing, outcome: Outcome, run: str, action: str, what: str) -> bytes:
    """Sealed bytes of `outcome` for `run`/`action`; a value that cannot be pickled becomes a stored, explicit
    error instead."""
    try:
        data = cloudpickle.dumps(outcome)
    except Exception as exc:
        if outcome.error is not None:
            error: BaseRuntimeError = RuntimeSystemError(
                type(outcome.error).__name__, f"{what} failed and its error cannot be serialized: {outcome.error}"
            )
        else:
            error = RuntimeUserError(UNSERIALIZABLE_CODE, f"the output of {what} cannot be serialized: {exc}")
        data = cloudpickle.dumps(Outcome(error=error))
    return keys.seal(data, RESULT_PURPOSE, run, action)


def decode_outcome(keys: KeyRing, blob: bytes, run: str, action: str) -> Outcome:
    """The outcome of `run`/`action` in `blob`; one that cannot be loaded here becomes an explicit error.

    Raises:
        UnsafePayloadError: If the blob was not sealed for exactly this run and action by a key of `keys`.
    """
    what = f"result of action {run}/{action}"
    data = keys.open(blob, RESULT_PURPOSE, run, action, what=what)
    try:
        outcome = loads_value(data)
    except Exception as exc:
        message = f"{what} cannot be loaded in this process ({type(exc).__name__}: {exc})"
        return Outcome(error=RuntimeSystemError("UnloadableResult", message))
    if not isinstance(outcome, Outcome):
        return Outcome(error=RuntimeSystemError("BadOutcome", f"{what} holds a {type(outcome).__name__}"))
    return outcome
