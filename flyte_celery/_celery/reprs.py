"""How values are shown to people: Flower's args and results, the run index's inputs and outputs, refused headers.

Every one is a repr cut short, bounded in cost too (a million-item list or a 64 MiB header is not turned into a
string first; byte strings show their size), and never raising (a user's `__repr__` that fails shows as such).
"""

from __future__ import annotations

import functools
import reprlib
from collections.abc import Mapping
from typing import Any, Final

MAX_LEVEL: Final = 3  # containers nested deeper show as `[...]`


def short_repr(value: Any, limit: int) -> str:
    """`value`'s repr in at most `limit` characters."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{type(value).__name__}: {len(value):,} bytes>"
    try:
        return cut(_shortener(limit).repr(value), limit)
    except Exception as exc:  # a user's __repr__ that fails says nothing about the action
        return cut(f"<{type(value).__name__}: repr failed: {exc}>", limit)


def call_repr(arguments: Mapping[str, Any], limit_each: int) -> str:
    """`(name=value, ...)`, each value's repr in at most `limit_each` characters."""
    return "(" + ", ".join(f"{name}={short_repr(value, limit_each)}" for name, value in arguments.items()) + ")"


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@functools.lru_cache(maxsize=8)
def _shortener(limit: int) -> reprlib.Repr:
    shortener = reprlib.Repr()
    shortener.maxstring = shortener.maxother = shortener.maxlong = limit
    shortener.maxlevel = MAX_LEVEL
    return shortener
