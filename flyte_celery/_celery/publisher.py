"""Publishing actions: the one entry task, sealed messages, and how Flower shows them.

Every action is a message for `ENTRY_TASK` whose Celery task id is `<run>-<action>`, shown in Flower under its
task's name (`shadow`), with its inputs as `argsrepr` and its identity as `kwargsrepr`. `Publisher` sends what one
loop tick asked for on one producer connection.

The `task-sent` event that Flower needs to show a queued action is ours, not Celery's: Celery's names the entry
task rather than the action's task (and could overwrite the worker's `task-received` name when it arrived late),
and publishing it with the message cost every child round trip about 0.4 ms. Ours follow the messages within
`EVENT_FLUSH_DELAY_S`, batched, off the path of the waiting parent.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from celery import Celery

from flyte_celery._celery.envelope import Envelope, celery_task_id
from flyte_celery._celery.events import DelayedEvents, batching_dispatcher
from flyte_celery._celery.message import SealedMessage, seal_message
from flyte_celery._celery.reprs import call_repr
from flyte_celery._context import ROOT_ACTION_NAME
from flyte_celery._signing import KeyRing

ENTRY_TASK: Final = "flyte_celery.run_action"
MAX_REPR_CHARS: Final = 200
MAX_PUBLISH_BATCH: Final = 500  # messages kombu buffers before it flushes a batch
INLINE_PUBLISH_MAX: Final = 2  # batches this small are published on the event loop's thread


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


class SentEvents:
    """Sends `task-sent` events for published actions, on one connection (from any thread), batched as the end
    events are (see `events`): at once with `send`, or within `EVENT_FLUSH_DELAY_S` with `queue`."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._dispatcher: Any = None
        self._pending: DelayedEvents[Publication] = DelayedEvents(self.send, "task-sent events")

    def queue(self, publications: Sequence[Publication]) -> None:
        """Queue the events of published actions (on the event loop's thread)."""
        self._pending.put(publications)

    def send(self, publications: Sequence[Publication]) -> None:
        with self._lock:
            if self._dispatcher is None:
                self._dispatcher = batching_dispatcher(self.app)
            for publication in publications:
                self._dispatcher.send("task-sent", **sent_event(publication))
            self._dispatcher.flush()  # one event message per EVENTS_PER_MESSAGE events, as Celery's worker does

    def close(self) -> None:
        """Send what is still queued, then close the connection."""
        batch = self._pending.take()
        if batch:
            self._pending.send_logging_failures(batch)
        with self._lock:
            if self._dispatcher is not None:
                self._dispatcher.close()
                self._dispatcher.connection.release()
                self._dispatcher = None


def sent_event(publication: Publication) -> dict[str, Any]:
    """The fields Celery's own `task-sent` event has, with the action's task as its name."""
    envelope = publication.envelope
    action = envelope.action
    return {
        "uuid": envelope.task_id,
        "root_id": celery_task_id(envelope.run.name, ROOT_ACTION_NAME),
        "parent_id": celery_task_id(envelope.run.name, action.parent) if action.parent else None,
        "name": action.task,
        "args": publication.argsrepr,
        "kwargs": identity_repr(envelope),
        "retries": 0,
        "eta": None,
        "expires": None,
        "queue": action.queue,
        "exchange": action.queue,
        "routing_key": action.queue,
    }


class Publisher:
    """Publishes from an event loop: everything requested in one loop tick goes out on one producer connection,
    from an executor thread (kombu's publish blocks); their `task-sent` events follow."""

    def __init__(self, app: Celery, keys: KeyRing) -> None:
        self.app = app
        self.keys = keys
        self.sent_events = SentEvents(app)
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
        publications = [p for p, _ in batch]
        loop = asyncio.get_running_loop()
        if len(publications) <= INLINE_PUBLISH_MAX:
            # A message or two: publishing here blocks the loop for less than the two thread hops would take.
            job: asyncio.Future[None] = loop.create_future()
            try:
                self._publish_batch(publications)
            except Exception as exc:
                job.set_exception(exc)
            else:
                job.set_result(None)
        else:
            job = loop.run_in_executor(None, self._publish_batch, publications)

        def settle(done: asyncio.Future[None]) -> None:
            error = done.exception()
            for _, future in batch:
                if future.done():
                    continue
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(None)
            if error is None:
                self.sent_events.queue(publications)

        job.add_done_callback(settle)

    def close(self) -> None:
        self.sent_events.close()

    def _publish_batch(self, batch: list[Publication]) -> None:
        # kombu's batch pipelines the messages on the Redis transport.
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
    """How Flower shows an action's inputs: `name=value` pairs, each value's repr cut short (see `reprs`)."""
    return call_repr(inputs, MAX_REPR_CHARS)
