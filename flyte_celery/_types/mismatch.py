"""`Mismatch`: a value that does not fit its declared type, and where inside the value it went wrong."""

from __future__ import annotations

import reprlib
import typing
from typing import Any

_values = reprlib.Repr()
_values.maxstring = 60
_values.maxother = 60


class Mismatch(TypeError):
    """Raised by a converter when a value does not fit its hint.

    Containers add the position of the offending element as the error travels up (`[2]`, `['key']`, `.field`),
    so the message can point inside the value; the interface turns it into a `TypeError` naming the task and the
    input or output.
    """

    def __init__(self, hint: Any, value: Any, reason: str = "") -> None:
        super().__init__(reason)
        self.hint = hint
        self.value = value
        self.reason = reason
        self.path: list[str] = []

    def within(self, segment: str) -> Mismatch:
        """Record that the mismatch lies under `segment` of the enclosing value; returns self to re-raise."""
        self.path.append(segment)
        return self

    def describe(self, where: str) -> str:
        """The message for a mismatch found in `where` ("task 'env.t': type conversion failed for input 'x'")."""
        inside = "".join(reversed(self.path))
        got = f"{type(self.value).__name__} {_values.repr(self.value)}"
        text = f"{where}{inside}: expected {type_name(self.hint)}, got {got}"
        return f"{text} ({self.reason})" if self.reason else text

    def __str__(self) -> str:
        return self.describe("value")


def type_name(hint: Any) -> str:
    """A hint as a reader writes it: `int`, `list[float]`, `Optional[int]`, `Color`."""
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__qualname__
    if hint is None:
        return "None"
    return repr(hint).replace("typing.", "").replace("NoneType", "None")
