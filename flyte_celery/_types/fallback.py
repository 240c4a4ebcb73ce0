"""Types the engine does not convert: their values pass through as they are (the transport pickles every value)
after an `isinstance` check, and the first use of each such type logs one warning, as Flyte's does when it falls
back to pickling a type it has no transformer for.

Flyte checks nothing for such a type (its pickle transformer takes any value); we check the class, so a wrong
value fails at the call instead of somewhere in the task.
"""

from __future__ import annotations

import threading
from typing import Any

from flyte_celery._logging import system_logger
from flyte_celery._types.converter import Converter, identity, instance_of
from flyte_celery._types.mismatch import type_name

_warned: set[str] = set()
_warned_lock = threading.Lock()


def pickled(hint: Any, cls: Any) -> Converter:
    """The converter of `hint`, a type the engine has no conversion for, whose values must be instances of `cls`
    (the hint itself, or the origin of a generic alias such as `set[int]`)."""
    warn_pickled(hint)
    if not isinstance(cls, type):
        return identity
    try:
        isinstance(None, cls)
    except TypeError:  # a class that refuses isinstance checks (a non-runtime Protocol): nothing to check
        return identity
    return instance_of(cls)


def warn_pickled(hint: Any) -> None:
    """Log, once per type in this process, that values of `hint` are pickled."""
    name = type_name(hint)
    with _warned_lock:
        if name in _warned:
            return
        _warned.add(name)
    system_logger.warning(
        "Unsupported type %s is pickled; pickle can only send objects between the same versions of Python and of "
        "the class, so prefer a type flyte-celery converts (int, float, str, bool, bytes, datetime, date, "
        "timedelta, Enum, Literal, list, dict, tuple, Optional, Union, dataclasses, pydantic models, File, Dir, "
        "DataFrame)",
        name,
    )
