"""The per-process Celery runtime: one async Redis client, one reply channel, batched publishing, bundle cache.

Every process that waits on actions (a worker pool process, a hybrid client, a client waiting on a run) has one
`Runtime` on one event loop. Waiting is demultiplexed: the process subscribes once to its own reply channel, and
each finished action notifies the reply channels registered in its waiters set.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import socket
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from celery import Celery

from flyte_celery._celery.bundle import Bundle, build_bundle, bundle_digest, load_bundle
from flyte_celery._celery.envelope import HEADER, Envelope, celery_task_id
from flyte_celery._celery.keys import BUNDLE_TTL_S, LEASE_TTL_S, MESSAGE_TTL_S, Keys, lease_member
from flyte_celery._celery.outcome import Outcome, decode_outcome, encode_outcome
from flyte_celery._celery.records import ATTACH, ATTACH_TTLS, COMPLETE, COMPLETE_TTL, notification
from flyte_celery._celery.signing import sign, signing_key, verify
from flyte_celery._config_model import Settings
from flyte_celery._context import ROOT_ACTION_NAME
from flyte_celery._logging import system_logger
from flyte_celery._task import TaskTemplate
from flyte_celery.errors import RuntimeSystemError

ENTRY_TASK = "flyte_celery.run_action"
MAX_REPR_CHARS = 200
MAX_CACHED_BUNDLES = 64
REDIS_MAX_CONNECTIONS = 32  # per process; waiters queue for a connection beyond that
RECHECK_INTERVAL_S = 2.0  # how often waits are checked against Redis, in case a notification was missed


@dataclass(frozen=True)
class Publication:
    """One message to publish: an action's envelope, its signed inputs and how Flower should show it."""

    envelope: Envelope
    inputs: bytes
    argsrepr: str


class Runtime:
    """Redis, reply channel and publisher of one process, bound to the event loop it is started on."""

    def __init__(self, settings: Settings, app: Celery) -> None:
        self.settings = settings
        self.app = app
        self.keys = Keys(settings.redis.key_prefix)
        secret = settings.security.signing_key
        self.signing_key = signing_key(secret.get_secret_value() if secret else None)
        self.process_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self.reply_channel = self.keys.reply_channel(self.process_id)
        # A bounded pool that makes callers wait for a connection, rather than fail, when a wide fan-out is busy.
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis_url_resolved(), max_connections=REDIS_MAX_CONNECTIONS, timeout=None
        )
        self.redis = aioredis.Redis(connection_pool=pool)
        self._attaching: list[tuple[tuple[str, str], asyncio.Future[Any]]] = []
        self._waiting: defaultdict[str, list[asyncio.Future[None]]] = defaultdict(list)
        self._pending: list[tuple[Publication, asyncio.Future[None]]] = []
        self._bundles: dict[str, Bundle] = {}
        self._bundle_of: dict[int, str] = {}
        self._reader: asyncio.Task[None] | None = None
        self._pubsub: Any = None
        self._attach = self.redis.register_script(ATTACH)
        self._complete = self.redis.register_script(COMPLETE)
        self.on_abort: list[Any] = []
        # Callables returning the runs whose actions this process hosts (checked for aborts missed meanwhile).
        self.hosted_runs: list[Any] = []

    async def start(self) -> None:
        self._pubsub = self.redis.pubsub()
        await self._pubsub.subscribe(self.reply_channel, self.keys.abort_channel)
        self._reader = asyncio.ensure_future(self._read())

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._pubsub is not None:
            await self._pubsub.aclose()
        await self.redis.aclose(close_connection_pool=True)  # the pool is ours: passed in, not owned by default

    async def _read(self) -> None:
        # Pub/sub drops what is published while a connection is being re-established, and redis-py may reconnect
        # silently: every RECHECK_INTERVAL_S the waits and the hosted runs are also checked against Redis itself.
        loop = asyncio.get_running_loop()
        next_check = loop.time() + RECHECK_INTERVAL_S
        while True:
            message = None
            try:
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=RECHECK_INTERVAL_S)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                system_logger.warning("reply channel read failed (%s); resubscribing", exc)
                await asyncio.sleep(0.1)
                next_check = 0.0
            if message is not None:
                self._dispatch(text_of(message["channel"]), text_of(message["data"]))
            if loop.time() >= next_check:
                try:
                    await self._recheck()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    system_logger.warning("re-checking waits against Redis failed: %s", exc)
                next_check = loop.time() + RECHECK_INTERVAL_S

    def _dispatch(self, channel: str, data: str) -> None:
        if channel == self.keys.abort_channel:
            for callback in self.on_abort:
                callback(data)
            return
        for future in self._waiting.pop(data, ()):
            if not future.done():
                future.set_result(None)

    async def _recheck(self) -> None:
        """Wake the waits whose action has a result, and abort the hosted runs marked aborted (missed messages)."""
        waits = list(self._waiting)
        runs = sorted({run for source in self.hosted_runs for run in source()})
        if not waits and not runs:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in waits:
                run, _, action = key.rpartition(":")
                pipe.exists(self.keys.result(run, action))
            for run in runs:
                pipe.exists(self.keys.aborted(run))
            found = await pipe.execute()
        for key, done in zip(waits, found[: len(waits)], strict=True):
            if done:
                self._dispatch(self.reply_channel, key)
        for run, aborted in zip(runs, found[len(waits) :], strict=True):
            if aborted:
                self._dispatch(self.keys.abort_channel, run)

    async def wait_for(self, run: str, action: str, publication: Publication | None, *, release: Any = None) -> Outcome:
        """The outcome of `run`/`action`, publishing its message first if nobody has yet.

        `release` (if given) is called once the wait is known to be real, i.e. the action has no result yet.
        """
        key = notification(run, action)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[key].append(future)
        try:
            result, must_publish = await self._attach_batched(run, action)
            if result is None:
                if must_publish and publication is not None:
                    try:
                        await self.publish(publication)
                    except BaseException:
                        # Not published after all: let the next attempt (a retry, a take-over) publish it.
                        await self.redis.delete(self.keys.enqueued(run, action))
                        raise
                if release is not None:
                    release()
                await future
                result = cast("bytes | None", await self.redis.get(self.keys.result(run, action)))
                if result is None:
                    raise RuntimeSystemError("ResultMissing", f"action {run}/{action} finished but has no result")
            return decode_outcome(self.signing_key, result, f"result of action {run}/{action}")
        finally:
            waiting = self._waiting.get(key)
            if waiting is not None and future in waiting:
                waiting.remove(future)
                if not waiting:
                    del self._waiting[key]

    # Attaching: every wait registered in one loop tick goes to Redis in one pipelined round trip.
    async def _attach_batched(self, run: str, action: str) -> tuple[bytes | None, int]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._attaching.append(((run, action), future))
        if len(self._attaching) == 1:
            loop.call_soon(lambda: asyncio.ensure_future(self._flush_attaching()))
        result, must_publish = await future
        return result, int(must_publish)

    async def _flush_attaching(self) -> None:
        batch, self._attaching = self._attaching, []
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for (run, action), _ in batch:
                    keys = [
                        self.keys.result(run, action),
                        self.keys.waiters(run, action),
                        self.keys.enqueued(run, action),
                    ]
                    await self._attach(keys=keys, args=[self.reply_channel, *ATTACH_TTLS], client=pipe)
                replies = await pipe.execute()
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            if not future.done():
                future.set_result(reply)

    async def complete(self, run: str, action: str, outcome: Outcome, what: str) -> bool:
        """Record the outcome (first one wins) and notify the waiters; True if this call wrote it."""
        blob = encode_outcome(self.signing_key, outcome, what)
        written = await self._complete(
            keys=[self.keys.result(run, action), self.keys.waiters(run, action), self.keys.leases,
                  self.keys.message(run, action)],
            args=[blob, COMPLETE_TTL, notification(run, action), lease_member(run, action)],
        )  # fmt: skip
        return bool(written)

    async def precheck(self, run: str, action: str, message: str | None) -> tuple[bool, bool]:
        """(has the action a result already, is its run aborted), in one round trip that also, given the action's
        message, stores it and takes the action's lease."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(self.keys.result(run, action))
            pipe.exists(self.keys.aborted(run))
            if message is not None:
                pipe.set(self.keys.message(run, action), message, ex=MESSAGE_TTL_S)
                pipe.zadd(self.keys.leases, {lease_member(run, action): time.time() + LEASE_TTL_S})
            finished, aborted, *_ = await pipe.execute()
        return bool(finished), bool(aborted)

    # Publishing: everything requested in one loop tick goes out on one producer connection.
    async def publish(self, publication: Publication) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((publication, future))
        if len(self._pending) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(None, self._publish_batch, [p for p, _ in batch])

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
        task = self.app.tasks[ENTRY_TASK]
        with self.app.producer_or_acquire() as producer:
            for publication in batch:
                envelope = publication.envelope
                task.apply_async(
                    args=(base64.b64encode(publication.inputs).decode("ascii"),),
                    task_id=envelope.task_id,
                    queue=envelope.action.queue,
                    headers={HEADER: envelope.encode()},
                    shadow=envelope.action.task,
                    root_id=celery_task_id(envelope.run.name, ROOT_ACTION_NAME),
                    parent_id=celery_task_id(envelope.run.name, envelope.action.parent)
                    if envelope.action.parent
                    else None,
                    argsrepr=publication.argsrepr,
                    kwargsrepr=identity_repr(envelope),
                    producer=producer,
                )

    # Bundles: stored once per digest, cached in memory.
    async def bundle_for(self, task: TaskTemplate[Any, Any]) -> str:
        """The digest of a stored bundle holding `task`, building and storing one if this process has none."""
        digest = self._bundle_of.get(id(task))
        if digest is not None:
            return digest
        data, bundle = build_bundle(task)
        digest = bundle_digest(data)
        await self.redis.set(self.keys.bundle(digest), sign(self.signing_key, data), ex=BUNDLE_TTL_S)
        self._index(digest, bundle)
        return digest

    async def load_bundle(self, digest: str) -> Bundle:
        bundle = self._bundles.get(digest)
        if bundle is not None:
            return bundle
        blob = await self.redis.get(self.keys.bundle(digest))
        if blob is None:
            raise RuntimeSystemError(
                "BundleNotFound", f"code bundle {digest} is not in Redis (expired or never stored)"
            )
        bundle = load_bundle(verify(self.signing_key, cast(bytes, blob), f"code bundle {digest}"))
        self._index(digest, bundle)
        return bundle

    def _index(self, digest: str, bundle: Bundle) -> None:
        if len(self._bundles) >= MAX_CACHED_BUNDLES:
            old_digest = next(iter(self._bundles))
            old = self._bundles.pop(old_digest)
            for task in old.tasks.values():
                self._bundle_of.pop(id(task), None)
        self._bundles[digest] = bundle
        for task in bundle.tasks.values():
            self._bundle_of[id(task)] = digest


def text_of(value: Any) -> str:
    """A Redis reply (bytes or str) as text."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


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
