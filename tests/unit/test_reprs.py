"""What people see of values (Flower's args and results, the run index, refused headers): short, cheap to make
whatever the value's size, and never an exception."""

from __future__ import annotations

import pytest

from flyte_celery._celery.events import MAX_RESULT_REPR_CHARS, short_repr
from flyte_celery._celery.message_guard import inspect_message
from flyte_celery._celery.publisher import MAX_REPR_CHARS, inputs_repr
from flyte_celery._celery.reprs import call_repr, cut
from flyte_celery._celery.reprs import short_repr as shortened
from flyte_celery._signing import KeyRing


class Broken:
    def __repr__(self) -> str:
        raise RuntimeError("no repr today")


def test_small_values_show_as_their_repr() -> None:
    assert inputs_repr({"n": 21, "name": "x", "xs": [1, 2]}) == "(n=21, name='x', xs=[1, 2])"
    assert short_repr({"a": 1.5}) == "{'a': 1.5}"


@pytest.mark.parametrize("value", [list(range(1_000_000)), "y" * 10_000_000, {i: i for i in range(100_000)}])
def test_big_values_are_cut_short_without_being_turned_into_a_string_first(value: object) -> None:
    assert len(shortened(value, 50)) <= 50
    assert len(short_repr(value)) <= MAX_RESULT_REPR_CHARS
    assert len(inputs_repr({"v": value})) <= len("(v=)") + MAX_REPR_CHARS


def test_byte_strings_show_their_size() -> None:
    assert shortened(b"\0" * 10_000_000, 40) == "<bytes: 10,000,000 bytes>"
    assert shortened(bytearray(3), 40) == "<bytearray: 3 bytes>"


def test_a_failing_repr_shows_the_type_instead_of_raising() -> None:
    assert inputs_repr({"b": Broken()}).startswith("(b=<Broken instance at 0x")
    assert short_repr([Broken()]).startswith("[<Broken instance at 0x")
    assert len(shortened(Broken(), 12)) == 12


def test_nesting_is_bounded() -> None:
    assert shortened([[[[[1]]]]], 80) == "[[[[...]]]]"


def test_call_repr_and_cut() -> None:
    assert call_repr({}, 10) == "()"
    assert call_repr({"s": "abcdefghijklmnop"}, 10) == "(s='ab...nop')"
    assert cut("abcdef", 6) == "abcdef"
    assert cut("abcdefg", 6) == "abc..."


def test_a_refused_message_with_a_huge_header_is_described_briefly() -> None:
    class Message:
        headers = {"x" * 1_000_000: 1}
        content_type = "application/json"
        content_encoding = "utf-8"

    refusal = inspect_message(KeyRing(b"unit-reprs-key"), Message())
    assert refusal is not None
    assert len(refusal.reason) < 200
