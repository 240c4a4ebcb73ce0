"""Action messages written into the broker by our own Redis scripts, when the broker is the Redis we keep records in.

Publishing through Celery and kombu costs about 0.4 ms of CPU per message on the thread that publishes (a producer,
a Redis client object and a queue declaration per call) and one blocking round trip; on a 2-core machine that was a
quarter of a sequential child round trip. When the broker is the Redis database of our run records, the script that
attaches a parent to its child (see `records.ATTACH`) pushes the child's message itself, in the same round trip and
atomically with the mark that it is published: no message is ever marked published but lost, or published twice.

The bytes pushed are what kombu's Redis transport pushes for the same `apply_async` (Celery's own protocol-2
message from `app.amqp.as_task_v2`, in kombu's JSON envelope with a base64 body), onto the list kombu's consumers
pop for the queue at priority 0. A test compares the two. Anything that would change those bytes or that list
(another serializer or protocol, compression, priorities, a key prefix) keeps the kombu path. Celery's
`before_task_publish` receivers see each message before it is encoded (tracing adds its headers there) and
`after_task_publish` receivers once it is pushed, as for a publish through Celery.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from celery import Celery
from celery.signals import after_task_publish, before_task_publish

from flyte_celery._celery.envelope import celery_task_id
from flyte_celery._celery.message import seal_message
from flyte_celery._celery.publisher import ENTRY_TASK, Publication, identity_repr
from flyte_celery._context import ROOT_ACTION_NAME
from flyte_celery._signing import KeyRing

REDIS_SCHEMES: Final = ("redis", "rediss")
PERSISTENT: Final = 2  # kombu's delivery_mode for a persistent message
# Settings that change a message's bytes or the list it goes to: with any of them, kombu publishes.
CHANGING_SETTINGS: Final = ("task_compression", "task_default_priority", "task_queue_max_priority")
CHANGING_TRANSPORT_OPTIONS: Final = ("global_keyprefix",)


@dataclass(frozen=True)
class DirectMessage:
    """The bytes to push, and what Celery's `after_task_publish` receivers are told once they are pushed."""

    raw: bytes
    body: Any
    headers: dict[str, Any]
    routing_key: str


class DirectMessages:
    """Builds the broker bytes of action messages, as kombu's Redis transport would push them."""

    def __init__(self, app: Celery, keys: KeyRing) -> None:
        self.app = app
        self.keys = keys
        self.reply_to = app.thread_oid

    def encode(self, publication: Publication) -> DirectMessage:
        """The JSON text kombu would LPUSH for this action's message. Celery's `before_task_publish` receivers see
        it first, as they would for a publish through Celery (tracing adds its headers there)."""
        envelope = publication.envelope
        action = envelope.action
        sealed = seal_message(self.keys, envelope, publication.inputs)
        kwargsrepr = identity_repr(envelope)
        message = self.app.amqp.as_task_v2(
            envelope.task_id,
            ENTRY_TASK,
            args=sealed.args,
            shadow=action.task,
            root_id=celery_task_id(envelope.run.name, ROOT_ACTION_NAME),
            parent_id=celery_task_id(envelope.run.name, action.parent) if action.parent else None,
            argsrepr=publication.argsrepr,
            kwargsrepr=kwargsrepr,
            ignore_result=True,
            reply_to=self.reply_to,
        )
        headers = {**message.headers, **sealed.headers}
        properties: dict[str, Any] = {
            **message.properties,
            "argsrepr": publication.argsrepr,
            "kwargsrepr": kwargsrepr,
            "delivery_mode": PERSISTENT,
            "delivery_info": {"exchange": "", "routing_key": action.queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        }
        if before_task_publish.receivers:
            before_task_publish.send(
                sender=ENTRY_TASK,
                body=message.body,
                exchange="",
                routing_key=action.queue,
                headers=headers,
                properties=properties,
                declare=[],
                retry_policy=None,
            )
        raw = json.dumps(
            {
                "body": base64.b64encode(json.dumps(message.body).encode("utf-8")).decode("ascii"),
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": headers,
                "properties": properties,
            }
        ).encode("utf-8")
        return DirectMessage(raw, message.body, headers, action.queue)

    @staticmethod
    def pushed(message: DirectMessage) -> None:
        """Tell Celery's `after_task_publish` receivers that our script pushed `message`."""
        if after_task_publish.receivers:
            after_task_publish.send(
                sender=ENTRY_TASK,
                body=message.body,
                headers=message.headers,
                exchange="",
                routing_key=message.routing_key,
            )


def direct_messages(app: Celery, redis_url: str, keys: KeyRing) -> DirectMessages | None:
    """A `DirectMessages` if the app's broker is the Redis database at `redis_url` and our bytes are kombu's (see the
    module docstring), else None."""
    conf = app.conf
    broker = conf.broker_url or ""
    if not _same_redis_database(broker, redis_url):
        return None
    if conf.task_protocol != 2 or conf.task_serializer != "json":
        return None
    if any(conf.get(name) for name in CHANGING_SETTINGS):
        return None
    options = conf.broker_transport_options or {}
    if any(options.get(name) for name in CHANGING_TRANSPORT_OPTIONS):
        return None
    return DirectMessages(app, keys)


def _same_redis_database(broker_url: str, redis_url: str) -> bool:
    a, b = urlsplit(broker_url), urlsplit(redis_url)
    if a.scheme not in REDIS_SCHEMES or a.scheme != b.scheme:
        return False
    try:
        return (a.hostname, a.port or 6379, _db(a.path), a.username, a.password, a.query) == (
            b.hostname,
            b.port or 6379,
            _db(b.path),
            b.username,
            b.password,
            b.query,
        )
    except ValueError:  # a port that is not a number: let kombu say what is wrong with it
        return False


def _db(path: str) -> str:
    return path.strip("/") or "0"
