"""Running an action in a worker pool process: start checks, lease, the task code, its outcome and end event.

`ActionHost` runs on the process's event loop (see `worker_process`) and hosts every action handed to it, whether
its task body still holds the pool slot or gave it back (see `hosting`).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.exceptions import RedisError

from flyte_celery._action_call import ActionCall
from flyte_celery._cache.redis_store import redis_cache
from flyte_celery._celery.action_logs import ActionLogs
from flyte_celery._celery.controller import CeleryController, replaying
from flyte_celery._celery.envelope import Envelope
from flyte_celery._celery.events import EndEvents
from flyte_celery._celery.hosting import Slot, slot_held
from flyte_celery._celery.leases import LeaseKeeper
from flyte_celery._celery.offload import load_inputs
from flyte_celery._celery.outcome import Outcome
from flyte_celery._celery.records import Start
from flyte_celery._celery.reply_channel import text_of
from flyte_celery._celery.runtime import Runtime
from flyte_celery._environ import action_environ
from flyte_celery._execution import execute_action, format_traceback
from flyte_celery._logging import system_logger
from flyte_celery._signing import Authenticated
from flyte_celery._storage.probe import probe_all
from flyte_celery._values import loads_value
from flyte_celery.errors import (
    ActionAbortedError,
    BaseRuntimeError,
    MaxQueuedTimeExceededError,
    RuntimeSystemError,
)

T = TypeVar("T")
REDIS_ATTEMPTS = 6  # writes and checks a parent depends on survive a Redis hiccup of about 6 s
REDIS_RETRY_DELAY_S = 0.2


class ActionHost:
    """Runs actions on an event loop with the process's `Runtime`, Celery controller and Redis cache store."""

    def __init__(self, runtime: Runtime, loop: asyncio.AbstractEventLoop) -> None:
        self.runtime = runtime
        self.loop = loop
        self.cache = redis_cache(runtime.settings, runtime.keyring)
        self.controller = CeleryController(runtime, loop, self.cache)
        self.end_events = EndEvents(runtime.app)
        self.logs = ActionLogs(runtime)
        self._running: defaultdict[str, set[asyncio.Task[Any]]] = defaultdict(set)
        self.leases: LeaseKeeper | None = None
        self.handing_off = False
        runtime.on_abort(self._abort_run)
        runtime.watch_runs(lambda: list(self._running))

    async def run(
        self, envelope: Envelope, inputs: Authenticated, slot: Slot | None, start: Start, hostname: str | None = None
    ) -> Outcome:
        """Run one action whose start checks said `start` (START or ABORTED) to its outcome, record it, and wake
        whoever waits for it. Its lease, taken by the checks, is renewed while it runs, so another worker takes it
        over if this one dies.
        """
        run, action = envelope.run.name, envelope.action.name
        started = time.monotonic()
        current = asyncio.current_task()
        if current is not None:
            self._running[run].add(current)
        try:
            if self.leases is not None:
                self.leases.hold(run, action)
            logs = None
            if start is Start.ABORTED:
                outcome = Outcome(error=await self._aborted(envelope, "before it started"))
            else:
                with self.logs.capturing(run, action, envelope.action.task) as log:
                    outcome = await self._outcome(envelope, inputs, slot)
                logs = await self.logs.final_text(log)
            what = f"task {envelope.action.task!r}"
            store_in, limit = envelope.run.run_base_dir or None, self._inline_limit(envelope)
            # A parent waits on this write (which also drops the lease in Redis): retried through a passing hiccup.
            await _with_redis_retries(
                lambda: self.runtime.complete(
                    run, action, outcome, what, store_in=store_in, max_bytes=limit, logs=logs
                ),
                f"outcome of {envelope.task_id}",
            )
            if slot is not None and slot.released and hostname:
                self.end_events.queue(hostname, envelope.task_id, outcome, started)
            return outcome
        finally:
            if self.leases is not None:
                # Renewed no longer: if the outcome could not be written, a sweeper re-runs the action.
                self.leases.release(run, action)
            if current is not None:
                self._running[run].discard(current)
                if not self._running[run]:
                    del self._running[run]
            if slot is not None:
                slot.finish()

    async def _outcome(self, envelope: Envelope, inputs: Authenticated, slot: Slot | None) -> Outcome:
        try:
            bundle = await self.runtime.bundles.load(envelope.action.bundle)
            task = bundle.tasks.get(envelope.action.task)
            if task is None:
                raise RuntimeSystemError(
                    "TaskNotInBundle", f"task {envelope.action.task!r} is not in code bundle {envelope.action.bundle}"
                )
            _check_queued_time(envelope, task.timeout.max_queued_time_s)
            spec = envelope.run.to_spec()
            # A worker that cannot use the run's storage fails the action here, saying why, rather than in a
            # write of its outcome that nobody would see (one round trip per process and place).
            await probe_all([spec.run_base_dir, spec.raw_data_path])
            if envelope.action.inputs_url:
                url = envelope.action.inputs_url
                inputs = await load_inputs(self.runtime.keyring, url, spec.name, envelope.action.name)
            context = envelope.task_context("remote")
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
            return Outcome(error=await self._aborted(envelope, "while it ran"))
        except Exception as exc:
            error = RuntimeSystemError(type(exc).__name__, str(exc), traceback_text=format_traceback(exc))
            return Outcome(
                error=error.with_context(
                    run_name=envelope.run.name, action_name=envelope.action.name, task_name=envelope.action.task
                )
            )

    async def _aborted(self, envelope: Envelope, when: str) -> ActionAbortedError:
        """The error of an action whose run was aborted, with the reason given to the abort (when Redis has it)."""
        run = envelope.run.name
        try:
            reason = await self.runtime.redis.get(self.runtime.keys.aborted(run))
        except (RedisError, OSError):
            reason = None
        why = f": {text_of(reason)}" if reason else ""
        return ActionAbortedError(f"action {envelope.action.name} was aborted {when} (run {run} was aborted{why})")

    def _inline_limit(self, envelope: Envelope) -> int | None:
        bundle = self.runtime.bundles.loaded(envelope.action.bundle)
        task = bundle.tasks.get(envelope.action.task) if bundle is not None else None
        return task.max_inline_io_bytes if task is not None else None

    def hand_off(self) -> None:
        """Stop hosting: cancel every action here without recording an outcome (their leases are expired)."""
        self.handing_off = True
        for tasks in list(self._running.values()):
            for task in list(tasks):
                task.cancel()

    def _abort_run(self, run: str) -> None:
        for task in list(self._running.get(run, ())):
            task.cancel()


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
