"""Publishing actions: the one entry task, sealed messages, and how Flower shows them.

Every action is a message for `ENTRY_TASK` whose Celery task id is `<run>-<action>`, shown in Flower under its
task's name (`shadow`), with its inputs as `argsrepr` and its identity as `kwargsrepr`. `Publisher` sends what one
loop tick asked for on one producer connection.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Final

from celery import Celery

from flyte_celery._celery.envelope import Envelope, celery_task_id
from flyte_celery._celery.message import SealedMessage, seal_message
from flyte_celery._context import ROOT_ACTION_NAME
from flyte_celery._signing import KeyRing

ENTRY_TASK: Final = "flyte_celery.run_action"
MAX_REPR_CHARS: Final = 200
MAX_PUBLISH_BATCH: Final = 500  # messages kombu buffers before it flushes a batch


@dataclass(frozen=True)
class Publication:
    """One message to publish: an action's envelope, its inputs' bytes and how Flower should show them."""

    envelope: Envelope
    inputs: bytes
    argsrepr: str


def send(app: Celery, keys: KeyRing, publication: Publication, producer: Any = None) -> None:
    """Seal and publish one action's message to its queue."""
    envelope = publication.envelope
    sealed = seal_message(keys, envelope, publication.inputs)
    send_sealed(app, envelope, sealed, publication.argsrepr, identity_repr(envelope), producer)


def send_sealed(
    app: Celery, envelope: Envelope, sealed: SealedMessage, argsrepr: str | None, kwargsrepr: str | None, producer: Any
) -> None:
    action = envelope.action
    app.tasks[ENTRY_TASK].apply_async(
        args=sealed.args,
        task_id=envelope.task_id,
        queue=action.queue,
        headers=sealed.headers,
        shadow=action.task,
        root_id=celery_task_id(envelope.run.name, ROOT_ACTION_NAME),
        parent_id=celery_task_id(envelope.run.name, action.parent) if action.parent else None,
        argsrepr=argsrepr,
        kwargsrepr=kwargsrepr,
        producer=producer,
    )


class Publisher:
    """Publishes from an event loop: everything requested in one loop tick goes out on one producer connection,
    from an executor thread (kombu's publish blocks)."""

    def __init__(self, app: Celery, keys: KeyRing) -> None:
        self.app = app
        self.keys = keys
        self._pending: list[tuple[Publication, asyncio.Future[None]]] = []

    async def publish(self, publication: Publication) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((publication, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        job = asyncio.get_running_loop().run_in_executor(None, self._publish_batch, [p for p, _ in batch])

        def settle(done: asyncio.Future[None]) -> None:
            error = done.exception()
            for _, future in batch:
                if future.done():
                    continue
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(None)

        job.add_done_callback(settle)

    def _publish_batch(self, batch: list[Publication]) -> None:
        # kombu's batch pipelines the messages (and their task-sent events) on the Redis transport.
        with self.app.producer_or_acquire() as producer, producer.batch(MAX_PUBLISH_BATCH):
            for publication in batch:
                send(self.app, self.keys, publication, producer)


def identity_repr(envelope: Envelope) -> str:
    """How Flower shows who an action is: run, action, parent and group, with the run's labels and annotations."""
    identity: dict[str, Any] = {"run": envelope.run.name, "action": envelope.action.name}
    if envelope.action.parent:
        identity["parent"] = envelope.action.parent
    if envelope.action.group:
        identity["group"] = envelope.action.group
    if envelope.run.labels:
        identity["labels"] = envelope.run.labels
    if envelope.run.annotations:
        identity["annotations"] = envelope.run.annotations
    return repr(identity)


def inputs_repr(inputs: dict[str, Any]) -> str:
    """How Flower shows an action's inputs: `name=value` pairs, each value's repr cut short."""
    parts = []
    for name, value in inputs.items():
        text = repr(value)
        if len(text) > MAX_REPR_CHARS:
            text = text[: MAX_REPR_CHARS - 3] + "..."
        parts.append(f"{name}={text}")
    return "(" + ", ".join(parts) + ")"
