"""Types the engine does not convert itself: registered transformers (how `flyte_celery.io` adds File, Dir and
DataFrame), pandas' DataFrame, and the pickle fallback with its one warning per type."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Optional, Protocol

import pytest

from flyte_celery._types import converter_for, instance_of, register


def test_a_registered_class_is_converted_by_its_transformer_subclasses_too() -> None:
    class Path:
        def __init__(self, path: str) -> None:
            self.path = path

    class LocalPath(Path):
        pass

    def transformer(hint: Any) -> Any:
        def convert(value: Any) -> Any:
            if isinstance(value, str):
                return hint(value)
            if not isinstance(value, hint):
                raise ValueError("not a path")
            return value

        return convert

    register(Path, transformer)

    assert converter_for(Path)("/tmp").path == "/tmp"
    assert isinstance(converter_for(LocalPath)("/tmp"), LocalPath)
    assert converter_for(list[Path])(["/a"])[0].path == "/a"
    with pytest.raises(TypeError, match="not a path"):
        converter_for(Path)(1)


def test_a_registration_replaces_converters_built_before_it() -> None:
    class Later:
        pass

    assert converter_for(Optional[Later])(None) is None  # built before: the pickle fallback
    register(Later, lambda hint: lambda value: "converted")

    assert converter_for(Optional[Later])(Later()) == "converted"


def test_a_predicate_registration_matches_hints() -> None:
    class Marked:
        flyte_celery_marked = True

    register(lambda hint: getattr(hint, "flyte_celery_marked", False), instance_of)

    marked = Marked()
    assert converter_for(Marked)(marked) is marked
    with pytest.raises(TypeError):
        converter_for(Marked)("not marked")


def test_a_pandas_data_frame_annotation_is_checked_without_importing_pandas(
    system_log: pytest.LogCaptureFixture,
) -> None:
    # A stand-in with pandas' module and name: the check reads the annotation, it never imports pandas.
    frame_class = type("DataFrame", (), {"__module__": "pandas.core.frame"})
    had_pandas = "pandas" in sys.modules

    frame = frame_class()
    assert converter_for(frame_class)(frame) is frame
    with pytest.raises(TypeError):
        converter_for(frame_class)({"a": [1]})
    assert ("pandas" in sys.modules) == had_pandas
    assert system_log.records == []  # a type Flyte knows: no pickle warning


def test_an_unknown_class_is_checked_passed_through_and_warned_about_once(
    system_log: pytest.LogCaptureFixture,
) -> None:
    class Opaque:
        pass

    value = Opaque()
    assert converter_for(Opaque)(value) is value
    assert converter_for(list[Opaque])([value])[0] is value
    assert converter_for(Optional[Opaque])(None) is None
    with pytest.raises(TypeError, match=r"expected .*Opaque, got int 1"):
        converter_for(Opaque)(1)

    warnings = [record.getMessage() for record in system_log.records]
    assert len(warnings) == 1
    assert "Opaque is pickled" in warnings[0]


def test_an_unknown_generic_is_checked_against_its_origin(system_log: pytest.LogCaptureFixture) -> None:
    assert converter_for(frozenset[int])(frozenset({1})) == frozenset({1})
    assert converter_for(Sequence[str])(("a",)) == ("a",)
    with pytest.raises(TypeError):
        converter_for(frozenset[int])({1})
    assert len(system_log.records) == 2


def test_a_class_that_refuses_isinstance_is_passed_through(system_log: pytest.LogCaptureFixture) -> None:
    class Sized(Protocol):
        def size(self) -> int: ...

    assert converter_for(Sized)("anything") == "anything"
    assert len(system_log.records) == 1
