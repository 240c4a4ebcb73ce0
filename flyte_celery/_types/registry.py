"""Transformers registered from outside the engine: how values of a type the engine does not know are converted.

`flyte_celery.io` registers `File`, `Dir` and `DataFrame` here when it is imported; a pandas `DataFrame`
annotation is known without importing pandas (the annotation's class already names it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Union

from flyte_celery._types.converter import Converter

# Given the declared hint, the converter of values declared with it. The converter may raise `Mismatch`, or a
# TypeError or ValueError whose message says why the value was refused.
Transformer = Callable[[Any], Converter]
TypeKey = Union[type, Callable[[Any], bool]]


class Registry:
    """Transformers by class (matching subclasses, the nearest registered class first) or by predicate on hints
    (tried after the classes, the latest registered first, so a package can refine a built-in rule)."""

    def __init__(self) -> None:
        self._by_class: dict[type, Transformer] = {}
        self._by_predicate: list[tuple[Callable[[Any], bool], Transformer]] = []

    def add(self, key: TypeKey, transformer: Transformer) -> None:
        if isinstance(key, type):
            self._by_class[key] = transformer
        else:
            self._by_predicate.append((key, transformer))

    def find(self, hint: Any) -> Transformer | None:
        if isinstance(hint, type) and self._by_class:
            for cls in hint.__mro__:
                found = self._by_class.get(cls)
                if found is not None:
                    return found
        for matches, transformer in self._by_predicate[::-1]:
            if matches(hint):
                return transformer
        return None


def is_pandas_frame(hint: Any) -> bool:
    """Whether `hint` is pandas' `DataFrame` class; pandas itself is never imported for that."""
    return (
        isinstance(hint, type)
        and hint.__name__ == "DataFrame"
        and getattr(hint, "__module__", "").partition(".")[0] == "pandas"
    )
