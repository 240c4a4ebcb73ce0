"""Serialization of task inputs and outputs: the seam where values become bytes and back.

Plain pickle first (fast, by reference); cloudpickle when the value holds something pickle cannot name (a class or
function defined in `__main__` or a closure). A value neither can serialize becomes an explicit error naming what.

This is the only module that unpickles (a test holds it to that), and it loads only `Authenticated` bytes: bytes
that `KeyRing.open` checked for exactly where they were read (see `_signing`), or bytes this process just made.
"""

from __future__ import annotations

import pickle
from typing import Any, Final

import cloudpickle

from flyte_celery._signing import Authenticated
from flyte_celery.errors import RuntimeUserError

PICKLE_PROTOCOL: Final = pickle.HIGHEST_PROTOCOL
UNSERIALIZABLE_CODE: Final = "UnserializableValueError"


def dumps_value(value: Any, *, what: str) -> bytes:
    """Serialize `value`; `what` names it in the error ("output of task 'env.t'").

    Raises:
        RuntimeUserError: code "UnserializableValueError", when the value cannot be serialized.
    """
    try:
        return pickle.dumps(value, protocol=PICKLE_PROTOCOL)
    except Exception:
        pass
    try:
        return cloudpickle.dumps(value, protocol=PICKLE_PROTOCOL)  # type: ignore[no-any-return]
    except Exception as exc:
        raise RuntimeUserError(
            UNSERIALIZABLE_CODE, f"the {what} cannot be serialized ({type(value).__name__}): {exc}"
        ) from exc


def loads_value(data: Authenticated) -> Any:
    """The value in authenticated bytes (a pickle, or a cloudpickle of a user's class or function)."""
    return pickle.loads(data)


def copy_value(value: Any, *, what: str) -> Any:
    """A deep copy made through serialization, so in-process runs see what a worker would see."""
    if value is None or type(value) in (int, float, str, bool, bytes):
        return value
    return pickle.loads(dumps_value(value, what=what))  # bytes made here, never read from anywhere
