"""The Celery controller: a task call made in this process becomes a child action on the fleet.

The child is named, keyed and given its context exactly as in local mode (`prepare_child_call`); then its
envelope and inputs are sealed and published to the child's queue, and the caller waits on this process's reply
channel. The first wait of a parent running inside a worker gives its pool slot back (see `slots`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from flyte_celery._action_call import ActionCall
from flyte_celery._celery.bundle import dumps_by_value
from flyte_celery._celery.envelope import ActionMessage, Envelope, RunContextMessage
from flyte_celery._celery.publisher import Publication, inputs_repr
from flyte_celery._celery.runtime import Runtime
from flyte_celery._celery.slots import release_current_slot
from flyte_celery._context import Frame
from flyte_celery._controllers.shared import ChildCalls
from flyte_celery._environ import environ_paused
from flyte_celery._run_spec import RunSpec
from flyte_celery._task import TaskTemplate
from flyte_celery.errors import RuntimeSystemError, RuntimeUserError


class CeleryController(ChildCalls):
    """Submits child actions of any run hosted in this process to the Celery fleet."""

    def __init__(self, runtime: Runtime, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop, "remote")
        self.runtime = runtime

    async def submit(
        self, frame: Frame, task: TaskTemplate[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = self.prepare(frame, task, args, kwargs)
        try:
            inputs = dumps_by_value(call.inputs)
        except Exception as exc:
            raise RuntimeUserError(type(exc).__name__, f"the inputs of {task.name!r} cannot be pickled: {exc}") from exc
        bundle = await self.runtime.bundles.digest_for(task)
        envelope = child_envelope(call, frame, bundle)
        publication = Publication(envelope, inputs, inputs_repr(call.inputs))
        # While it waits, the caller's env_vars are lifted: other runs' code may execute in this process meanwhile.
        try:
            with environ_paused():
                async with self.limit_for(frame):
                    outcome = await self.runtime.wait_for(
                        frame.run.name, call.action.name, publication, release=release_current_slot
                    )
        except (RedisError, KombuError, OSError) as exc:
            # The platform failed, not the user's code: a system error, so nobody mistakes it for theirs.
            raise RuntimeSystemError(
                type(exc).__name__, f"could not run child action {call.action.name}: {exc}"
            ) from exc
        return outcome.unwrap()

    async def stop(self) -> None:
        return None


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
