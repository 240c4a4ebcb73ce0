"""A run's action index: the `{<run>}:actions` hash that `Run.actions()`, `flyte-celery get` and the live view of
`run --follow` read. The round trips that already record an action's life keep it (ATTACH, START and COMPLETE in
`records`), so it costs no round trip of its own.

    field          value                                                written by
    <action>       JSON {"task", "parent", "group", "inputs", "queued"}  ATTACH, when the action is to be published
    <action>:s     its start time (unix s)                              START, when it may start
    <action>:e     JSON {"phase", "ended", "outputs" or "error"}        COMPLETE, with its first outcome

Everything in it is display text (reprs and messages cut short, traceback tails) in JSON, never pickled, and a
reader takes none of it for a value: the root's outputs and error as values come from its sealed result.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Final

from flyte_celery._celery.outcome import Outcome
from flyte_celery._celery.publisher import Publication
from flyte_celery._celery.reprs import cut, short_repr
from flyte_celery._context import ROOT_ACTION_NAME
from flyte_celery._logging import system_logger
from flyte_celery._run import ActionPhase
from flyte_celery._run_details import Action, ErrorInfo, utc_time
from flyte_celery.errors import ActionAbortedError, BaseRuntimeError, TaskTimeoutError

START_SUFFIX: Final = ":s"
END_SUFFIX: Final = ":e"
MAX_REPR_CHARS: Final = 160  # inputs and outputs
MAX_MESSAGE_CHARS: Final = 500
MAX_TRACEBACK_CHARS: Final = 2000  # the traceback's tail, where the failing line is


def queued_entry(publication: Publication) -> str:
    """The index entry of an action about to be published."""
    action = publication.envelope.action
    return new_entry(action.task, publication.argsrepr, action.queued_at or time.time(), action.parent, action.group)


def new_entry(task: str, inputs: str, queued: float, parent: str | None = None, group: str | None = None) -> str:
    """An action's index entry: its task, inputs (as Flower shows them), enqueue time, parent and group."""
    entry: dict[str, Any] = {"task": task, "queued": queued}
    if parent:
        entry["parent"] = parent
    if group:
        entry["group"] = group
    if inputs:
        entry["inputs"] = cut(inputs, MAX_REPR_CHARS)
    return json.dumps(entry, separators=(",", ":"))


def end_entry(outcome: Outcome, ended: float) -> str:
    """The index entry of an action's end: its phase and time, and its output's repr or its error."""
    entry: dict[str, Any] = {"phase": outcome_phase(outcome).value, "ended": ended}
    if outcome.error is None:
        entry["outputs"] = short_value(outcome.value)
    else:
        entry["error"] = _error_entry(outcome.error)
    return json.dumps(entry, separators=(",", ":"))


def outcome_phase(outcome: Outcome) -> ActionPhase:
    """The terminal phase an outcome means."""
    if outcome.error is None:
        return ActionPhase.SUCCEEDED
    if isinstance(outcome.error, ActionAbortedError):
        return ActionPhase.ABORTED
    if isinstance(outcome.error, TaskTimeoutError):
        return ActionPhase.TIMED_OUT
    return ActionPhase.FAILED


def short_value(value: Any) -> str:
    """How the index shows an input or output value (see `reprs`)."""
    return short_repr(value, MAX_REPR_CHARS)


def _error_entry(error: BaseRuntimeError) -> dict[str, str]:
    traceback = error.traceback_text or ""
    if len(traceback) > MAX_TRACEBACK_CHARS:
        traceback = "..." + traceback[-MAX_TRACEBACK_CHARS:]
    return {
        "type": type(error).__name__,
        "code": str(error.code),
        "kind": str(error.kind),
        "message": cut(str(error), MAX_MESSAGE_CHARS),
        "traceback": traceback,
    }


def read_actions(run: str, fields: Mapping[Any, Any]) -> list[Action]:
    """The actions of `run` in its index's fields (as HGETALL returns them), the root first, then by enqueue time.

    A field that does not decode is skipped (logged at DEBUG): the index is display data, not a record to trust.
    """
    queued: dict[str, dict[str, Any]] = {}
    started: dict[str, float] = {}
    ended: dict[str, dict[str, Any]] = {}
    for raw_field, raw_value in fields.items():
        name, value = _text(raw_field), _text(raw_value)
        try:
            if name.endswith(START_SUFFIX):
                started[name[: -len(START_SUFFIX)]] = float(value)
            elif name.endswith(END_SUFFIX):
                ended[name[: -len(END_SUFFIX)]] = _object(value)
            else:
                queued[name] = _object(value)
        except ValueError as exc:
            system_logger.debug("skipping index field %r of run %s: %s", name, run, exc)
    names = set(queued) | set(started) | set(ended)
    actions = [_action(run, name, queued.get(name, {}), started.get(name), ended.get(name)) for name in names]
    actions.sort(key=_order)
    return actions


def _order(action: Action) -> tuple[bool, float, str]:
    first_seen = action.queued_time or action.start_time or action.end_time
    return (action.name != ROOT_ACTION_NAME, first_seen.timestamp() if first_seen else 0.0, action.name)


def _action(run: str, name: str, queued: dict[str, Any], started: float | None, ended: dict[str, Any] | None) -> Action:
    if ended is not None:
        phase = _phase(ended.get("phase"))
    else:
        phase = ActionPhase.RUNNING if started is not None else ActionPhase.QUEUED
    return Action(
        name=name,
        run_name=run,
        task_name=str(queued.get("task", "?")),
        phase=phase,
        parent=_optional_text(queued.get("parent")),
        group=_optional_text(queued.get("group")),
        inputs_repr=str(queued.get("inputs", "")),
        outputs_repr=_optional_text(ended.get("outputs")) if ended else None,
        error_info=error_info(ended.get("error")) if ended else None,
        queued_time=utc_time(_number(queued.get("queued"))),
        start_time=utc_time(started),
        end_time=utc_time(_number(ended.get("ended"))) if ended else None,
    )


def error_info(data: Any) -> ErrorInfo | None:
    """An `ErrorInfo` from an end entry's "error" object (None if it has none)."""
    if not isinstance(data, dict):
        return None
    return ErrorInfo(
        error_type=str(data.get("type", "")),
        code=str(data.get("code", "")),
        kind=str(data.get("kind", "")),
        message=str(data.get("message", "")),
        traceback=str(data.get("traceback", "")),
    )


def _phase(value: Any) -> ActionPhase:
    try:
        return ActionPhase(value)
    except ValueError:
        return ActionPhase.FAILED  # an end we cannot read is no success


def _object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
