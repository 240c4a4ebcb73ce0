"""The Celery controller: a task call made in this process becomes a child action on the fleet.

The child is named, keyed and given its context exactly as in local mode (`prepare_child_call`); then its
envelope and signed inputs are published to the child's queue, and the caller waits on this process's reply
channel. The first wait of a parent running inside a worker gives its pool slot back (see `slots`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import Any

from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from flyte_celery._action_call import ActionCall, prepare_child_call
from flyte_celery._celery.bundle import dumps_by_value
from flyte_celery._celery.envelope import ActionMessage, Envelope, RunContextMessage
from flyte_celery._celery.runtime import Publication, Runtime, inputs_repr
from flyte_celery._celery.signing import sign
from flyte_celery._celery.slots import release_current_slot
from flyte_celery._context import Frame
from flyte_celery._controllers.base import TaskCallSequencer
from flyte_celery._environ import environ_paused
from flyte_celery._run_spec import RunSpec
from flyte_celery._task import TaskTemplate
from flyte_celery.errors import BaseRuntimeError, RuntimeSystemError, RuntimeUserError


class CeleryController:
    """Submits child actions of any run hosted in this process to the Celery fleet."""

    def __init__(self, runtime: Runtime, loop: asyncio.AbstractEventLoop) -> None:
        self.runtime = runtime
        self.loop = loop
        self.sequencer = TaskCallSequencer()
        self._limits: dict[str, asyncio.Semaphore] = {}

    async def submit(
        self, frame: Frame, task: TaskTemplate[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        try:
            call = prepare_child_call(frame, task, args, kwargs, self.sequencer, "remote")
            inputs = sign(self.runtime.signing_key, dumps_by_value(call.inputs))
        except (BaseRuntimeError, TypeError):
            raise  # a TypeError is a bad call (arguments that do not fit the task): raised where the call is made
        except Exception as exc:
            raise RuntimeUserError(type(exc).__name__, str(exc)) from exc
        bundle = await self.runtime.bundle_for(task)
        envelope = child_envelope(call, frame, bundle)
        publication = Publication(envelope, inputs, inputs_repr(call.inputs))
        limit = self._limit_for(frame)
        # While it waits, the caller's env_vars are lifted: other runs' code may execute in this process meanwhile.
        try:
            with environ_paused():
                if limit is None:
                    outcome = await self.runtime.wait_for(
                        frame.run.name, call.action.name, publication, release=release_current_slot
                    )
                else:
                    async with limit:
                        outcome = await self.runtime.wait_for(
                            frame.run.name, call.action.name, publication, release=release_current_slot
                        )
        except (RedisError, KombuError, OSError) as exc:
            # The platform failed, not the user's code: a system error, so nobody mistakes it for theirs.
            raise RuntimeSystemError(
                type(exc).__name__, f"could not run child action {call.action.name}: {exc}"
            ) from exc
        return outcome.unwrap()

    def submit_sync(
        self, frame: Frame, task: TaskTemplate[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(self.submit(frame, task, args, kwargs), self.loop)

    def finalize_parent_action(self, action_key: str) -> None:
        self.sequencer.forget(action_key)
        self._limits.pop(action_key, None)

    async def stop(self) -> None:
        return None

    def _limit_for(self, frame: Frame) -> asyncio.Semaphore | None:
        bound = frame.run.max_action_concurrency
        if not bound:
            return None
        parent = (frame.task.task_action or frame.task.action).key
        limit = self._limits.get(parent)
        if limit is None:
            limit = self._limits[parent] = asyncio.Semaphore(bound)
        return limit


def queue_of(task: TaskTemplate[Any, Any], run: RunSpec) -> str:
    """Run `queue` > task (or its environment's) `queue` > the configured default."""
    return run.queue or task.queue or run.default_queue


def child_envelope(call: ActionCall, frame: Frame, bundle: str) -> Envelope:
    parent = frame.task.task_action or frame.task.action
    return Envelope(
        run=RunContextMessage.from_spec(frame.run),
        action=action_message(call, bundle, frame.run, parent=parent.name, group=_group(frame)),
    )


def action_message(
    call: ActionCall, bundle: str, run: RunSpec, *, parent: str | None, group: str | None
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
    )


def _group(frame: Frame) -> str | None:
    return frame.task.group_data.name if frame.task.group_data else None
