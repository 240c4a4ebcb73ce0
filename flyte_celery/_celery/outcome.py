"""An action's outcome as signed bytes: its value, or the error it failed with (both pickled by value)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cloudpickle

from flyte_celery._celery.signing import sign, verify
from flyte_celery._values import UNSERIALIZABLE_CODE
from flyte_celery.errors import BaseRuntimeError, RuntimeSystemError, RuntimeUserError


@dataclass(frozen=True)
class Outcome:
    """What a finished action produced: `value` on success, `error` on failure."""

    value: Any = None
    error: BaseRuntimeError | None = None

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def encode_outcome(key: bytes, outcome: Outcome, what: str) -> bytes:
    """Signed bytes of `outcome`; a value that cannot be pickled becomes a stored, explicit error instead."""
    try:
        return sign(key, cloudpickle.dumps(outcome))
    except Exception as exc:
        if outcome.error is not None:
            error: BaseRuntimeError = RuntimeSystemError(
                type(outcome.error).__name__, f"{what} failed and its error cannot be serialized: {outcome.error}"
            )
        else:
            error = RuntimeUserError(UNSERIALIZABLE_CODE, f"the output of {what} cannot be serialized: {exc}")
        return sign(key, cloudpickle.dumps(Outcome(error=error)))


def decode_outcome(key: bytes, blob: bytes, what: str) -> Outcome:
    outcome = cloudpickle.loads(verify(key, blob, what))
    if not isinstance(outcome, Outcome):
        raise RuntimeSystemError("BadOutcome", f"{what} holds a {type(outcome).__name__}, not an outcome")
    return outcome
