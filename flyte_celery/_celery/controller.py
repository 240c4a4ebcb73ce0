"""The Celery controller: a task call made in this process becomes a child action on the fleet.

The child is named, keyed and given its context exactly as in local mode (`prepare_child_call`); then its
envelope and inputs are sealed and published to the child's queue, and the caller waits on this process's reply
channel. A parent waiting on a child inside a worker gives its pool slot back (see `hosting`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, cast

from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from flyte_celery._action_call import ActionCall
from flyte_celery._cache.sealed import SealedCache
from flyte_celery._celery.bundle import dumps_inputs
from flyte_celery._celery.envelope import ActionMessage, Envelope, RunContextMessage
from flyte_celery._celery.hosting import release_current_slot, waiting_on_a_child
from flyte_celery._celery.offload import breach, outcome_of, store_inputs
from flyte_celery._celery.outcome import Outcome
from flyte_celery._celery.publisher import Publication, inputs_repr
from flyte_celery._celery.runtime import Runtime
from flyte_celery._context import Frame
from flyte_celery._controllers.shared import ChildCalls
from flyte_celery._environ import environ_paused
from flyte_celery._execution import cached_output
from flyte_celery._logging import system_logger
from flyte_celery._run_spec import RunSpec
from flyte_celery._task import TaskTemplate
from flyte_celery.errors import RuntimeSystemError


class CeleryController(ChildCalls):
    """Submits child actions of any run hosted in this process to the Celery fleet."""

    def __init__(self, runtime: Runtime, loop: asyncio.AbstractEventLoop, cache: SealedCache | None = None) -> None:
        super().__init__(loop, "remote")
        self.runtime = runtime
        self.cache = cache

    async def submit(
        self, frame: Frame, task: TaskTemplate[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = self.prepare(frame, task, args, kwargs)
        if call.cache_key is not None and call.read_cache and self.cache is not None:
            # A cached child is answered here, in one round trip, without a message (Flower does not show it).
            try:
                hit = await cached_output(self.cache, call.cache_key, call)
            except (RedisError, OSError) as exc:  # the child runs, and looks again
                system_logger.warning("cache lookup of %s failed: %s", call.task.name, exc)
                hit = None
            if hit is not None:
                return hit[0]
        inputs = dumps_inputs(call.inputs, task.name)
        too_big = breach(len(inputs), task.max_inline_io_bytes, f"inputs of task {task.name!r}")
        if too_big is not None:
            raise too_big
        inputs_url = None
        if len(inputs) > self.runtime.inline_max_bytes:
            inputs_url = await store_inputs(
                self.runtime.keyring, frame.run.run_base_dir, frame.run.name, call.action.name, inputs
            )
            inputs = b""
        bundle = await self.runtime.bundles.digest_for(task)
        envelope = child_envelope(call, frame, bundle, inputs_url)
        publication = Publication(envelope, inputs, inputs_repr(call.inputs))
        # While it waits, the caller's env_vars are lifted: other runs' code may execute in this process meanwhile.
        try:
            with environ_paused(), waiting_on_a_child():
                async with self.limit_for(frame):
                    outcome = await self.runtime.wait_for(
                        frame.run.name, call.action.name, publication, release=release_current_slot,
                        republish=_replaying.get(), eager=frame.task.attempt_number == 0 and not _replaying.get(),
                    )  # fmt: skip
        except (RedisError, KombuError, OSError) as exc:
            # The platform failed, not the user's code: a system error, so nobody mistakes it for theirs.
            raise RuntimeSystemError(
                type(exc).__name__, f"could not run child action {call.action.name}: {exc}"
            ) from exc
        return outcome.unwrap()

    async def recorded_trace(self, frame: Frame) -> tuple[Any] | None:
        if not _replaying.get():
            return None  # a first execution has nothing recorded: no round trip
        run, action = frame.run.name, frame.task.action.name
        blob = await self.runtime.redis.get(self.runtime.keys.result(run, action))
        if blob is None:
            return None
        outcome = await outcome_of(self.runtime.keyring, cast(bytes, blob), run, action)
        return None if outcome.error is not None else (outcome.value,)

    async def record_trace(self, frame: Frame, output: Any) -> None:
        run, action = frame.run.name, frame.task.action.name
        try:
            await self.runtime.complete(run, action, Outcome(value=output), f"trace {action}")
        except (RedisError, OSError) as exc:  # the trace ran; a replay of its parent would run it again
            system_logger.warning("could not record the output of trace %s of run %s: %s", action, run, exc)

    async def stop(self) -> None:
        return None


# True while a replayed action (taken over from a worker that stopped) runs: its children without a result are
# published again, since the stopped worker may have marked one enqueued and died before publishing it (a copy of
# one that was published is harmless: it finds the child finished, or running under a live lease elsewhere).
_replaying: ContextVar[bool] = ContextVar("flyte_celery_replaying", default=False)


@contextmanager
def replaying(replay: bool) -> Iterator[None]:
    token = _replaying.set(replay)
    try:
        yield
    finally:
        _replaying.reset(token)


def queue_of(task: TaskTemplate[Any, Any], run: RunSpec) -> str:
    """Run `queue` > task (or its environment's) `queue` > the configured default."""
    return run.queue or task.queue or run.default_queue


def child_envelope(call: ActionCall, frame: Frame, bundle: str, inputs_url: str | None = None) -> Envelope:
    parent = frame.task.task_action or frame.task.action
    return Envelope(
        run=RunContextMessage.from_spec(frame.run),
        action=action_message(call, bundle, frame.run, parent=parent.name, group=_group(frame), inputs_url=inputs_url),
    )


def action_message(
    call: ActionCall,
    bundle: str,
    run: RunSpec,
    *,
    parent: str | None,
    group: str | None,
    inputs_url: str | None = None,
) -> ActionMessage:
    return ActionMessage(
        name=call.action.name,
        parent=parent,
        task=call.task.name,
        bundle=bundle,
        version=call.context.version,
        group=group,
        custom_context=dict(call.context.custom_context),
        cache_key=call.cache_key,
        read_cache=call.read_cache,
        output_path=call.context.output_path,
        queue=queue_of(call.task, run),
        queued_at=time.time(),
        inputs_url=inputs_url,
    )


def _group(frame: Frame) -> str | None:
    return frame.task.group_data.name if frame.task.group_data else None
