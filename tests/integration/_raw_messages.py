"""Raw broker messages for the trust and poison-message tests: captured, forged and malformed, sent with kombu
straight to a worker's queue (neither Celery's client-side checks nor our publisher stand in the way)."""

from __future__ import annotations

import base64
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from kombu import Connection

from flyte_celery._celery.envelope import Envelope
from flyte_celery._celery.keys import Keys
from flyte_celery._celery.message import seal_message
from flyte_celery._celery.publisher import ENTRY_TASK, identity_repr
from flyte_celery._signing import KeyRing
from tests._services import wait_until


@dataclass
class RawMessage:
    """One broker message, as parts that a test can change before sending."""

    headers: dict[str, Any]
    body: bytes
    properties: dict[str, Any] = field(default_factory=dict)
    content_type: str = "application/json"
    content_encoding: str = "utf-8"

    @property
    def args(self) -> list[Any]:
        return list(json.loads(self.body)[0])

    def with_args(self, args: list[Any]) -> RawMessage:
        body = json.loads(self.body)
        body[0] = args
        return RawMessage(dict(self.headers), json.dumps(body).encode(), dict(self.properties))


def celery_message(app: Celery, headers: dict[str, Any], args: tuple[Any, ...], envelope: Envelope) -> RawMessage:
    """A message shaped exactly as Celery's client builds one for our entry task, with our headers added."""
    task = app.amqp.as_task_v2(
        envelope.task_id,
        ENTRY_TASK,
        args=args,
        kwargs={},
        shadow=envelope.action.task,
        root_id=f"{envelope.run.name}-a0",
        parent_id=None,
        argsrepr="(...)",
        kwargsrepr=identity_repr(envelope),
    )
    return RawMessage({**task.headers, **headers}, json.dumps(task.body).encode(), dict(task.properties))


def sealed(app: Celery, keys: KeyRing, envelope: Envelope, inputs: dict[str, Any]) -> RawMessage:
    """The message our publisher would send for `envelope` with `inputs`, sealed with `keys`."""
    message = seal_message(keys, envelope, pickle.dumps(inputs))
    return celery_message(app, message.headers, message.args, envelope)


def captured(redis_client: Any, queue: str) -> RawMessage:
    """The oldest message waiting on a Redis-broker queue (removed from it), as kombu stored it."""
    raw = redis_client.rpop(queue)
    assert raw is not None, f"no message waiting on queue {queue}"
    stored = json.loads(raw)
    properties = dict(stored["properties"])
    body = base64.b64decode(stored["body"]) if properties.get("body_encoding") == "base64" else stored["body"]
    return RawMessage(stored["headers"], body, properties, stored["content-type"], stored["content-encoding"])


class RawQueue:
    """Sends `RawMessage`s to one queue of a broker."""

    def __init__(self, broker_url: str, queue: str) -> None:
        self.queue = queue
        self.connection = Connection(broker_url)
        self.producer = self.connection.Producer()

    def send(self, message: RawMessage) -> None:
        properties = {k: v for k, v in message.properties.items() if k in ("correlation_id", "reply_to", "priority")}
        self.producer.publish(
            message.body,
            routing_key=self.queue,
            exchange="",
            headers=message.headers,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            retry=True,
            **properties,
        )

    def close(self) -> None:
        self.connection.release()


class Marker:
    """Unpickling this creates the file `path`: proof that something unauthenticated was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def marker_pickle(path: Path) -> bytes:
    return pickle.dumps({"x": Marker(path)})


def dead_letters(client: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange(keys.dead_letters, 0, -1)]


def wait_dead_letters(client: redis.Redis, keys: Keys, count: int, deadline_s: float = 30.0) -> list[dict[str, Any]]:
    """Wait until the dead-letter list holds at least `count` entries; returns them, newest first."""
    wait_until(lambda: client.llen(keys.dead_letters) >= count, deadline_s, f"{count} dead letters")
    return dead_letters(client, keys)


def keys_naming(client: redis.Redis, name: str) -> list[bytes]:
    """Every key of the DB whose name contains `name`."""
    return list(client.scan_iter(match=f"*{name}*", count=1000))
