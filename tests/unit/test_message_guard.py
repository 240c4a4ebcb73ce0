"""The message guard's header allow-list: what our publisher sends passes, and so does the trace context tracing
instrumentation adds (as text); any other header, or trace context that is not text, is refused, naming it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from celery import Celery

from flyte_celery._celery.envelope import ActionMessage, Envelope, RunContextMessage
from flyte_celery._celery.message_guard import TRACE_CONTEXT_HEADERS, Verdict, inspect_message
from flyte_celery._signing import KeyRing
from tests.integration._raw_messages import RawMessage, sealed

RING = KeyRing(b"unit-message-guard-key")
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def message(**extra_headers: Any) -> RawMessage:
    """Our sealed message, with `extra_headers` (it has every attribute of a kombu message the guard reads)."""
    envelope = Envelope(
        run=RunContextMessage(name="r-guard"),
        action=ActionMessage(name="a0", task="env.main", bundle="b" * 32, queue="q"),
    )
    raw = sealed(Celery("unit-guard", set_as_current=False), RING, envelope, {"x": 1})
    return replace(raw, headers={**raw.headers, **extra_headers})


def test_our_message_passes() -> None:
    assert inspect_message(RING, message()) is None


@pytest.mark.parametrize("name", sorted(TRACE_CONTEXT_HEADERS))
def test_trace_context_as_text_passes(name: str) -> None:
    assert inspect_message(RING, message(**{name: TRACEPARENT})) is None


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({"traceparent": {"nested": "dict"}}, "'traceparent'"),
        ({"tracestate": "x" * 5000}, "'tracestate'"),
        ({"x-custom": "value"}, "'x-custom'"),
        ({"headers": {"traceparent": TRACEPARENT}}, "'headers'"),
    ],
    ids=["traceparent-dict", "tracestate-too-long", "unknown-header", "nested-headers"],
)
def test_other_headers_are_refused_naming_them(headers: dict[str, Any], named: str) -> None:
    refusal = inspect_message(RING, message(**headers))
    assert refusal is not None
    assert refusal.verdict is Verdict.DEAD_LETTER
    assert named in refusal.reason
