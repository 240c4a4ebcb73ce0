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
    """The outcome in `blob`; one that cannot be loaded here becomes an explicit error naming `what`.

    Raises:
        UnsafePayloadError: If the blob's signature is wrong.
    """
    data = verify(key, blob, what)
    try:
        outcome = cloudpickle.loads(data)
    except Exception as exc:
        message = f"{what} cannot be loaded in this process ({type(exc).__name__}: {exc})"
        return Outcome(error=RuntimeSystemError("UnloadableResult", message))
    if not isinstance(outcome, Outcome):
        raise RuntimeSystemError("BadOutcome", f"{what} holds a {type(outcome).__name__}, not an outcome")
    return outcome
