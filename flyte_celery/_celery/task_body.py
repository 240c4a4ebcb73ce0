"""The body of the entry Celery task: authenticate the message, check that the action may start (see
`start_checks`), hand it to the process's loop, and wait on its pool slot.

An action that finishes while the body holds the slot ends like any Celery task; one that gives it back (it waits
on a child, a sleep, a socket...) makes the body return `HOSTED` (acknowledged; see `request`) and lives on in the
loop thread, protected by its lease.
"""

from __future__ import annotations

import json
from typing import Any

from flyte_celery._celery.envelope import HEADER, claimed_identity, decode_envelope
from flyte_celery._celery.events import short_repr
from flyte_celery._celery.message import MAC_HEADER, AuthenticMessage, authenticate_message
from flyte_celery._celery.outcome import Outcome
from flyte_celery._celery.records import Start
from flyte_celery._celery.request import HOSTED, ActionFailed
from flyte_celery._celery.worker_process import WorkerProcess, worker_process
from flyte_celery._config_model import Settings
from flyte_celery._logging import system_logger
from flyte_celery.errors import MessageDecodeError, UnsafePayloadError


def run_action_body(task: Any, args: tuple[Any, ...], kwargs: dict[str, Any], settings: Settings) -> str:
    """The body of the entry Celery task (see the module docstring). It never raises for a bad message and records
    nothing for one that is not authentic: the names such a message claims are not to be trusted."""
    request = task.request
    headers = {name: _header(request, name) for name in (HEADER, MAC_HEADER)}
    process = worker_process(settings, task.app)
    try:
        if kwargs:
            raise MessageDecodeError("a message of ours has no keyword arguments", field="kwargs")
        authentic = authenticate_message(process.runtime.keyring, headers, args)
    except (MessageDecodeError, UnsafePayloadError) as err:
        system_logger.error("refused message %s: %s", request.id, err)
        return f"refused: {err}"
    try:
        envelope = decode_envelope(authentic.envelope_text)
    except MessageDecodeError as err:
        _record_undecodable(process, authentic, err)
        return f"rejected: {err}"
    if envelope.task_id != request.id:
        system_logger.error("refused message %s: its envelope names action %s", request.id, envelope.task_id)
        return "refused: task id and envelope disagree"
    # What a sweeper re-publishes if this worker dies before the action ends.
    message = json.dumps(
        {
            "args": list(args),
            "headers": headers,
            "argsrepr": getattr(request, "argsrepr", None),
            "kwargsrepr": getattr(request, "kwargsrepr", None),
        }
    )
    start = process.start_checks.check(envelope.run.name, envelope.action.name, message)
    if start in (Start.FINISHED, Start.DUPLICATE, Start.LOST):
        if start is Start.LOST:
            system_logger.error("dropping action %s: its run's records are gone from Redis", envelope.task_id)
        return "not started: finished, running elsewhere, or its run is gone"
    slot, future = process.start(envelope, authentic.inputs, getattr(request, "hostname", None), start)
    slot.wait()
    if slot.released and not future.done():
        process.hosted.wait_below_bound()  # at the bound, keep the slot: this process takes no more messages
        return HOSTED  # acknowledged: from here on the action's lease keeps it alive
    outcome = future.result()
    if outcome.error is not None:
        error = outcome.error
        raise ActionFailed(f"{type(error).__name__}({error.code!r}, {str(error)!r})", error.traceback_text or "")
    return short_repr(outcome.value)


def _header(request: Any, name: str) -> Any:
    value = getattr(request, name, None)
    return value if value is not None else (request.headers or {}).get(name)


def _record_undecodable(process: WorkerProcess, authentic: AuthenticMessage, err: MessageDecodeError) -> None:
    # An authentic message (e.g. from a newer client) names its action truthfully: fail that action, so its parent
    # does not wait forever, and say how to fix it.
    system_logger.error("rejected an authentic message whose %r header does not decode: %s", HEADER, err)
    identity = claimed_identity(authentic.envelope_text)
    if identity is not None:
        run, action = identity
        process.call(process.runtime.complete(run, action, Outcome(error=err), "a message that does not decode"))
