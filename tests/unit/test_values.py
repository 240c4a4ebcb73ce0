"""The serialization seam: values become bytes and back, and `_values` is the only module of the package that
unpickles."""

from __future__ import annotations

import ast
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import flyte_celery
from flyte_celery._signing import Authenticated
from flyte_celery._values import UNSERIALIZABLE_CODE, copy_value, dumps_value, loads_value
from flyte_celery.errors import RuntimeUserError

PACKAGE = Path(flyte_celery.__file__).parent
PICKLERS = frozenset({"pickle", "_pickle", "cloudpickle", "dill", "marshal", "shelve", "joblib"})
LOADERS = frozenset({"load", "loads", "Unpickler"})


def unpickling_calls(path: Path) -> Iterator[str]:
    """`module.load(s)`/`Unpickler` uses and `from module import load(s)` in one source file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in LOADERS:
            if isinstance(node.value, ast.Name) and node.value.id in PICKLERS:
                yield f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value.id}.{node.attr}"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLERS:
            for alias in node.names:
                if alias.name in LOADERS:
                    yield f"{path.relative_to(PACKAGE)}:{node.lineno}: from {node.module} import {alias.name}"


def test_only_the_values_module_unpickles() -> None:
    found = [use for path in sorted(PACKAGE.rglob("*.py")) for use in unpickling_calls(path)]
    assert found  # the scan finds the loads of `_values` itself ...
    assert all(use.startswith("_values.py:") for use in found), found  # ... and no other


class Point:
    def __init__(self, x: int) -> None:
        self.x = x


@pytest.mark.parametrize("value", [None, 3, "text", {"a": [1, (2, 3.5)]}, b"\x00"])
def test_dumps_loads_round_trip(value: object) -> None:
    assert loads_value(Authenticated(dumps_value(value, what="output of task 't'"))) == value


def test_closures_travel_by_value() -> None:
    offset = 10
    loaded = loads_value(Authenticated(dumps_value(lambda x: x + offset, what="output")))
    assert loaded(1) == 11


def test_an_unserializable_value_is_an_error_naming_it() -> None:
    with pytest.raises(RuntimeUserError) as info:
        dumps_value(threading.Lock(), what="output of task 'env.t'")
    assert info.value.code == UNSERIALIZABLE_CODE
    assert "output of task 'env.t'" in str(info.value)
    assert "lock" in str(info.value)


def test_copy_value_is_a_deep_copy() -> None:
    original = {"points": [Point(1)]}
    copy = copy_value(original, what="input")
    assert copy is not original
    assert copy["points"][0] is not original["points"][0]
    assert copy["points"][0].x == 1
    assert copy_value("same", what="input") == "same"
