"""The check every message on our queues passes before Celery's own code looks at it.

Celery's consumer and strategy die on malformed messages (a body that is not `[args, kwargs, embed]`, an `id` that
is not a string, an `eta` of `''`, ...), and the broker then hands the killer to the next worker. So the worker's
consumer (see `guarded_consumer`) runs `inspect_message` first, which allows exactly what our own publisher sends
(an allow-list, not a list of known killers: the next Celery release will have new ones), plus the trace context
that OpenTelemetry's instrumentation adds, and checks the message's MAC. Nothing here raises: every problem becomes
a `Refusal` naming it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from flyte_celery._celery.envelope import HEADER, celery_task_id, decode_envelope
from flyte_celery._celery.message import MAC_HEADER, authenticate_message
from flyte_celery._celery.publisher import ENTRY_TASK
from flyte_celery._celery.reprs import short_repr
from flyte_celery._context import ROOT_ACTION_NAME
from flyte_celery._signing import KeyRing
from flyte_celery.errors import MessageDecodeError, UnknownSigningKeyError, UnsafePayloadError

CONTENT_TYPE: Final = "application/json"
CONTENT_ENCODING: Final = "utf-8"
MAX_BODY_BYTES: Final = 64 * 1024 * 1024
MAX_TEXT_HEADER_CHARS: Final = 4096
EMBED_KEYS: Final = frozenset({"callbacks", "errbacks", "chain", "chord"})
MAX_SHOWN_CHARS: Final = 80  # of a refused value, in the log and the dead letter


def _none(value: object) -> bool:
    return value is None


def _text_or_none(value: object) -> bool:
    return value is None or (isinstance(value, str) and len(value) <= MAX_TEXT_HEADER_CHARS)


def _zero(value: object) -> bool:
    return type(value) is int and value == 0


def _no_time_limits(value: object) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and value[0] is None and value[1] is None


def _no_stamps(value: object) -> bool:
    return value is None or value == {}


# Every header our publisher (Celery's protocol 2 plus our two) sends, and what its value must be; plus the one that
# kombu adds when it puts a message back.
CELERY_HEADERS: Final[Mapping[str, Callable[[object], bool]]] = {
    "lang": lambda v: v == "py",
    "task": lambda v: v == ENTRY_TASK,
    "id": lambda v: isinstance(v, str) and 0 < len(v) <= MAX_TEXT_HEADER_CHARS,
    "shadow": _text_or_none,
    "eta": _none,
    "expires": _none,
    "group": _none,
    "group_index": _none,
    "retries": _zero,
    "timelimit": _no_time_limits,
    "root_id": _text_or_none,
    "parent_id": _text_or_none,
    "argsrepr": _text_or_none,
    "kwargsrepr": _text_or_none,
    "origin": _text_or_none,
    "ignore_result": lambda v: isinstance(v, bool),
    "replaced_task_nesting": _zero,
    "stamped_headers": _none,
    "stamps": _no_stamps,
    "redelivered": lambda v: isinstance(v, bool),  # kombu marks a message it put back
}
# Trace context that OpenTelemetry's Celery instrumentation adds to every message it sees published (a
# `before_task_publish` receiver), for each of its propagators: W3C (the default), B3, Jaeger. Short text, read by
# nothing of ours and nothing Celery acts on; not covered by the MAC, so a forged one can only mislead a trace.
TRACE_CONTEXT_HEADERS: Final = frozenset(
    {
        "traceparent", "tracestate", "baggage",
        "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags",
        "uber-trace-id",
    }
)  # fmt: skip
KNOWN_HEADERS: Final[Mapping[str, Callable[[object], bool]]] = {
    **CELERY_HEADERS,
    **dict.fromkeys(TRACE_CONTEXT_HEADERS, _text_or_none),
}
OUR_HEADERS: Final = frozenset({HEADER, MAC_HEADER})
REQUIRED_HEADERS: Final = frozenset({"lang", "task", "id", *OUR_HEADERS})
PROPERTIES: Final[Mapping[str, Callable[[object], bool]]] = {
    "correlation_id": _text_or_none,
    "reply_to": _text_or_none,
    "priority": lambda v: v is None or (type(v) is int and 0 <= v <= 255),
}


class Verdict(str, Enum):
    DEAD_LETTER = "dead-letter"  # malformed, forged or tampered with: acknowledge, keep a copy, never retry
    REQUEUE = "requeue"  # signed with a key this worker does not have: leave it to workers that have it


@dataclass(frozen=True)
class Refusal:
    """Why a message is refused, and what to do with it."""

    verdict: Verdict
    reason: str
    key_id: str | None = None


def inspect_message(keys: KeyRing, message: Any) -> Refusal | None:
    """None if `message` (a kombu Message) is one of ours, authentic and well formed; else why not."""
    try:
        return _inspect(keys, message)
    except Exception as exc:  # the check itself must never be what kills the worker
        return Refusal(Verdict.DEAD_LETTER, f"could not be inspected ({type(exc).__name__}: {exc})")


def _inspect(keys: KeyRing, message: Any) -> Refusal | None:
    headers = message.headers
    if not isinstance(headers, dict):
        return _bad(f"headers are a {type(headers).__name__}, not a mapping")
    if message.content_type != CONTENT_TYPE or message.content_encoding != CONTENT_ENCODING:
        return _bad(f"content {message.content_type!r}/{message.content_encoding!r}, not {CONTENT_TYPE}/utf-8")
    missing = REQUIRED_HEADERS - headers.keys()
    if missing:
        return _bad(f"missing header(s) {sorted(missing)}")
    for name, value in headers.items():
        check = KNOWN_HEADERS.get(name)
        if check is None and name not in OUR_HEADERS:
            return _bad(f"unexpected header {_short(name)}")
        if check is not None and not check(value):
            return _bad(f"header {name!r} has an unexpected value {_short(value)}")
    properties = message.properties or {}
    for name, check in PROPERTIES.items():
        if not check(properties.get(name)):
            return _bad(f"property {name!r} has an unexpected value {_short(properties.get(name))}")
    args = _arguments(message.body)
    if isinstance(args, Refusal):
        return args
    try:
        authentic = authenticate_message(keys, headers, args)
    except UnknownSigningKeyError as exc:
        return Refusal(Verdict.REQUEUE, str(exc), key_id=exc.key_id)
    except (MessageDecodeError, UnsafePayloadError) as exc:
        return _bad(str(exc))
    try:
        envelope = decode_envelope(authentic.envelope_text)
    except MessageDecodeError:
        return None  # authentic, from a client this worker cannot read: the task body fails its action, saying why
    parent = envelope.action.parent
    expected = {
        "id": envelope.task_id,
        "shadow": envelope.action.task,
        "root_id": celery_task_id(envelope.run.name, ROOT_ACTION_NAME),
        "parent_id": celery_task_id(envelope.run.name, parent) if parent else None,
    }
    for name, value in expected.items():
        if headers.get(name) != value:
            return _bad(f"header {name!r} is {_short(headers.get(name))}, but the envelope says {value!r}")
    return None


def _arguments(body: object) -> list[Any] | Refusal:
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    if not isinstance(body, (bytes, bytearray, memoryview)):
        return _bad(f"body is a {type(body).__name__}, not bytes")
    if len(body) > MAX_BODY_BYTES:
        return _bad(f"body of {len(body)} bytes is over {MAX_BODY_BYTES}")
    try:
        decoded = json.loads(bytes(body))
    except ValueError as exc:
        return _bad(f"body is not JSON ({exc})")
    if not (isinstance(decoded, list) and len(decoded) == 3):
        return _bad("body is not [args, kwargs, embed]")
    args, kwargs, embed = decoded
    if not (isinstance(args, list) and len(args) == 1 and isinstance(args[0], str)):
        return _bad("args are not one string")
    if kwargs != {}:
        return _bad("kwargs are not empty")
    if not (isinstance(embed, dict) and embed.keys() <= EMBED_KEYS and all(v is None for v in embed.values())):
        return _bad("embed has callbacks, errbacks, a chain or a chord")
    return args


def _bad(reason: str) -> Refusal:
    return Refusal(Verdict.DEAD_LETTER, reason)


def _short(value: object) -> str:
    return short_repr(value, MAX_SHOWN_CHARS)
