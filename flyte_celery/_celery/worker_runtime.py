"""What a worker pool process runs: a loop thread hosting actions, and the Celery task body that feeds it.

The task body authenticates the message and hands the action to the loop thread, then waits on the action's
`Slot` (see `hosting`): an action that finishes while holding it ends like any Celery task; one that gives it back
(it waits on a child, a sleep, a socket...) makes the body return `HOSTED` (acknowledged; see `request`) and lives
on in the loop thread, protected by its lease.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from celery import Celery
from redis.exceptions import RedisError

from flyte_celery._action_call import ActionCall
from flyte_celery._cache.redis_store import redis_cache
from flyte_celery._celery.controller import CeleryController, replaying
from flyte_celery._celery.envelope import HEADER, Envelope, claimed_identity, decode_envelope
from flyte_celery._celery.events import EndEvents
from flyte_celery._celery.hosting import HostedActions, IdleSignallingSelector, Slot, slot_held
from flyte_celery._celery.leases import LeaseKeeper
from flyte_celery._celery.loop_watch import LoopWatch
from flyte_celery._celery.message import MAC_HEADER, AuthenticMessage, authenticate_message
from flyte_celery._celery.outcome import Outcome
from flyte_celery._celery.records import Start
from flyte_celery._celery.request import HOSTED
from flyte_celery._celery.runtime import Runtime
from flyte_celery._config_model import Settings
from flyte_celery._context import Mode, current_frame
from flyte_celery._environ import action_environ, install_context_environ
from flyte_celery._execution import execute_action, format_traceback
from flyte_celery._logging import LogOverrides, configure_logging, enable_per_run_settings, system_logger
from flyte_celery._signing import Authenticated
from flyte_celery._values import loads_value
from flyte_celery.errors import (
    ActionAbortedError,
    BaseRuntimeError,
    MaxQueuedTimeExceededError,
    MessageDecodeError,
    RuntimeSystemError,
    UnsafePayloadError,
)

T = TypeVar("T")
REDIS_ATTEMPTS = 6  # writes and checks a parent depends on survive a Redis hiccup of about 6 s
REDIS_RETRY_DELAY_S = 0.2


class ActionHost:
    """Runs actions on an event loop with the process's `Runtime`, Celery controller and Redis cache store."""

    def __init__(self, runtime: Runtime, loop: asyncio.AbstractEventLoop) -> None:
        self.runtime = runtime
        self.loop = loop
        self.controller = CeleryController(runtime, loop)
        self.cache = redis_cache(runtime.settings, runtime.keyring)
        self.end_events = EndEvents(runtime.app)
        self._running: defaultdict[str, set[asyncio.Task[Any]]] = defaultdict(set)
        self.leases: LeaseKeeper | None = None
        self.handing_off = False
        runtime.on_abort(self._abort_run)
        runtime.watch_runs(lambda: list(self._running))

    def _send_end_event(self, envelope: Envelope, outcome: Outcome, started: float, hostname: str) -> None:
        try:
            self.end_events.send(hostname, envelope.task_id, outcome, started)
        except Exception as exc:
            system_logger.warning("could not send the end event of %s: %s", envelope.task_id, exc)

    async def run(
        self,
        envelope: Envelope,
        inputs: Authenticated,
        slot: Slot | None,
        mode: Mode,
        hostname: str | None = None,
        message: str | None = None,
    ) -> Outcome | None:
        """Run one action to its outcome, record it, and wake whoever waits for it.

        With its `message` (JSON: what to re-publish), the action holds a lease while it runs, so another worker
        takes it over if this one dies. Returns None, running nothing, when the action must not start: it has a
        result already (a message delivered twice), another worker runs it, or its run's records are gone.
        """
        run, action = envelope.run.name, envelope.action.name
        started = time.monotonic()
        current = asyncio.current_task()
        if current is not None:
            self._running[run].add(current)
        holds_lease = message is not None and self.leases is not None
        try:
            start = await _with_redis_retries(
                lambda: self.runtime.start_checks(run, action, message), f"start checks of {envelope.task_id}"
            )
            if start in (Start.FINISHED, Start.DUPLICATE, Start.LOST):
                if start is Start.LOST:
                    system_logger.error("dropping action %s: its run's records are gone from Redis", envelope.task_id)
                return None
            if holds_lease and self.leases is not None:
                self.leases.hold(run, action)
            if start is Start.ABORTED:
                outcome = Outcome(error=ActionAbortedError(f"run {run} was aborted before action {action} started"))
            else:
                outcome = await self._outcome(envelope, inputs, slot, mode)
            what = f"task {envelope.action.task!r}"
            # A parent waits on this write (which also drops the lease in Redis): retried through a passing hiccup.
            await _with_redis_retries(
                lambda: self.runtime.complete(run, action, outcome, what), f"outcome of {envelope.task_id}"
            )
            if slot is not None and slot.released and hostname:
                await asyncio.get_running_loop().run_in_executor(
                    None, self._send_end_event, envelope, outcome, started, hostname
                )
            return outcome
        finally:
            if holds_lease and self.leases is not None:
                # Renewed no longer: if the outcome could not be written, a sweeper re-runs the action.
                self.leases.release(run, action)
            if current is not None:
                self._running[run].discard(current)
                if not self._running[run]:
                    del self._running[run]
            if slot is not None:
                slot.finish()

    async def _outcome(self, envelope: Envelope, inputs: Authenticated, slot: Slot | None, mode: Mode) -> Outcome:
        try:
            bundle = await self.runtime.bundles.load(envelope.action.bundle)
            task = bundle.tasks.get(envelope.action.task)
            if task is None:
                raise RuntimeSystemError(
                    "TaskNotInBundle", f"task {envelope.action.task!r} is not in code bundle {envelope.action.bundle}"
                )
            _check_queued_time(envelope, task.timeout.max_queued_time_s)
            spec = envelope.run.to_spec()
            context = envelope.task_context(mode)
            call = ActionCall(task, loads_value(inputs), context, envelope.action.cache_key, envelope.action.read_cache)
            cache = self.cache if call.cache_key else None
            with action_environ({**task.env_vars, **spec.env_vars}), replaying(envelope.action.replay):
                if slot is None:
                    value = await execute_action(call, spec, self.controller, cache)
                else:
                    slot.allow_release(pinned=not task.is_async)  # its lease is held: the slot may go
                    try:
                        with slot_held(slot):
                            value = await execute_action(call, spec, self.controller, cache)
                    finally:
                        slot.keep()  # a body still holding it waits for the outcome to be recorded
            return Outcome(value=value)
        except BaseRuntimeError as err:
            return Outcome(error=err)
        except asyncio.CancelledError:
            if self.handing_off:
                raise  # another worker takes the action over: record nothing
            return Outcome(error=ActionAbortedError(f"action {envelope.task_id} was aborted"))
        except Exception as exc:
            error = RuntimeSystemError(type(exc).__name__, str(exc), traceback_text=format_traceback(exc))
            return Outcome(
                error=error.with_context(
                    run_name=envelope.run.name, action_name=envelope.action.name, task_name=envelope.action.task
                )
            )

    def hand_off(self) -> None:
        """Stop hosting: cancel every action here without recording an outcome (their leases are expired)."""
        self.handing_off = True
        for tasks in list(self._running.values()):
            for task in list(tasks):
                task.cancel()

    def _abort_run(self, run: str) -> None:
        for task in list(self._running.get(run, ())):
            task.cancel()


def _run_log_overrides() -> LogOverrides | None:
    frame = current_frame()
    if frame is None:
        return None
    run = frame.run
    if run.log_level is None and run.user_log_level is None and run.log_format is None:
        return None
    return run.log_level, run.user_log_level, run.log_format


async def _with_redis_retries(operation: Callable[[], Awaitable[T]], what: str) -> T:
    for attempt in range(REDIS_ATTEMPTS):
        try:
            return await operation()
        except (RedisError, OSError) as exc:
            if attempt + 1 == REDIS_ATTEMPTS:
                system_logger.error("gave up on the %s: %s", what, exc)
                raise
            await asyncio.sleep(REDIS_RETRY_DELAY_S * 2**attempt)
    raise AssertionError("unreachable")


def _check_queued_time(envelope: Envelope, limit_s: float | None) -> None:
    queued_at = envelope.action.queued_at
    if limit_s and queued_at is not None and not envelope.action.replay:
        waited = time.time() - queued_at
        if waited > limit_s:
            raise MaxQueuedTimeExceededError(
                f"action {envelope.task_id} waited {waited:.1f}s in the queue, over its max_queued_time of {limit_s:g}s"
            )


class WorkerRuntime:
    """One per pool process: an event loop on its own thread, with an `ActionHost` on it."""

    def __init__(self, settings: Settings, app: Celery) -> None:
        self.pid = os.getpid()
        configure_logging(settings.log.level, settings.log.format, settings.log.reset_root_logger)
        install_context_environ()
        enable_per_run_settings(_run_log_overrides)
        self.hosted = HostedActions(settings.worker.max_hosted_actions)
        self.loop = asyncio.SelectorEventLoop(IdleSignallingSelector(self.hosted.on_loop_idle))
        self.thread = threading.Thread(target=self.loop.run_forever, name="flyte-celery-loop", daemon=True)
        self.thread.start()
        self.watch = LoopWatch(self.loop, self.thread, self.hosted)
        self.runtime = Runtime(settings, app)
        self.call(self.runtime.start())
        self.host = ActionHost(self.runtime, self.loop)
        self.leases = self.host.leases = LeaseKeeper(settings, self.runtime.keys, app)

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def start(
        self, envelope: Envelope, inputs: Authenticated, hostname: str | None, message: str
    ) -> tuple[Slot, concurrent.futures.Future[Outcome | None]]:
        slot = self.hosted.admit()
        coro = self.host.run(envelope, inputs, slot, "remote", hostname, message)
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return slot, future

    def hand_off(self) -> None:
        self.leases.hand_off()
        self.loop.call_soon_threadsafe(self.host.hand_off)

    def stop(self) -> None:
        self.watch.stop()
        self.hand_off()
        try:
            self.call(self.runtime.close())
            self.host.end_events.close()
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)


_runtime: WorkerRuntime | None = None
_runtime_lock = threading.Lock()


def hand_off() -> None:
    """On pool-process shutdown: let other workers take over the parents suspended here."""
    if _runtime is not None and _runtime.pid == os.getpid():
        _runtime.hand_off()


def worker_runtime(settings: Settings, app: Celery) -> WorkerRuntime:
    """This process's runtime, created on first use (and again in a forked child)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None or _runtime.pid != os.getpid():
            _runtime = WorkerRuntime(settings, app)
        return _runtime


def run_action_body(task: Any, args: tuple[Any, ...], kwargs: dict[str, Any], settings: Settings) -> str:
    """The body of the entry Celery task (see the module docstring). It never raises for a bad message and records
    nothing for one that is not authentic: the names such a message claims are not to be trusted."""
    request = task.request
    headers = {name: _header(request, name) for name in (HEADER, MAC_HEADER)}
    runtime = worker_runtime(settings, task.app)
    try:
        if kwargs:
            raise MessageDecodeError("a message of ours has no keyword arguments", field="kwargs")
        authentic = authenticate_message(runtime.runtime.keyring, headers, args)
    except (MessageDecodeError, UnsafePayloadError) as err:
        system_logger.error("refused message %s: %s", request.id, err)
        return f"refused: {err}"
    try:
        envelope = decode_envelope(authentic.envelope_text)
    except MessageDecodeError as err:
        _record_undecodable(runtime, authentic, err)
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
    slot, future = runtime.start(envelope, authentic.inputs, getattr(request, "hostname", None), message)
    slot.wait()
    if slot.released and not future.done():
        runtime.hosted.wait_below_bound()  # at the bound, keep the slot: this process takes no more messages
        return HOSTED  # acknowledged: from here on the action's lease keeps it alive
    outcome = future.result()
    if outcome is None:
        return "not started: finished, running elsewhere, or its run is gone"
    return "failed" if outcome.error is not None else "succeeded"


def _header(request: Any, name: str) -> Any:
    value = getattr(request, name, None)
    return value if value is not None else (request.headers or {}).get(name)


def _record_undecodable(runtime: WorkerRuntime, authentic: AuthenticMessage, err: MessageDecodeError) -> None:
    # An authentic message (e.g. from a newer client) names its action truthfully: fail that action, so its parent
    # does not wait forever, and say how to fix it.
    system_logger.error("rejected an authentic message whose %r header does not decode: %s", HEADER, err)
    identity = claimed_identity(authentic.envelope_text)
    if identity is not None:
        run, action = identity
        runtime.call(runtime.runtime.complete(run, action, Outcome(error=err), "a message that does not decode"))
