"""The per-process Celery runtime: one async Redis client, one reply channel, waits, start checks and results.

Every process that waits on actions (a worker pool process, a hybrid client, a client waiting on a run) has one
`Runtime` on one event loop. Waiting is demultiplexed: the process subscribes once to its own reply channel, and
each finished action notifies the reply channels registered in its waiters set. Pub/sub drops what is published
while a connection is re-established, so every `RECHECK_INTERVAL_S` the waits are also checked against Redis
itself; that check also notices runs whose records are gone (`RunLostError`) and aborts that were missed.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, Final, cast

from celery import Celery

from flyte_celery._celery.bundles import BundleCache
from flyte_celery._celery.keys import LEASE_TTL_S, Keys, lease_member
from flyte_celery._celery.outcome import Outcome, decode_outcome, encode_outcome
from flyte_celery._celery.publisher import Publication, Publisher
from flyte_celery._celery.records import (
    ATTACH,
    COMPLETE,
    MAX_OUTCOME_IN_NOTIFICATION_BYTES,
    START,
    Start,
    notification,
)
from flyte_celery._celery.scripts import Scripts
from flyte_celery._config_model import Settings
from flyte_celery._keyrings import fleet_keyring
from flyte_celery._logging import system_logger
from flyte_celery._redis_connect import async_client
from flyte_celery._throttle import Backoff, LogThrottle
from flyte_celery._urls import redact
from flyte_celery.errors import RunLostError, RuntimeSystemError

REDIS_MAX_CONNECTIONS: Final = 32  # per process; waiters queue for a connection beyond that
RECHECK_INTERVAL_S: Final = 2.0  # how often waits are checked against Redis, in case a notification was missed
CLOSE_TIMEOUT_S: Final = 2.0


class Runtime:
    """Redis, reply channel and publisher of one process, bound to the event loop it is started on.

    Args:
        settings: Where Redis and the broker are, the keys, the retention.
        app: The Celery app to publish with.
        give_up_after_s: Fail every wait once Redis has been unreachable this long (None: wait it out).
    """

    def __init__(self, settings: Settings, app: Celery, *, give_up_after_s: float | None = None) -> None:
        self.settings = settings
        self.app = app
        self.keys = Keys(settings.redis.key_prefix, settings.retention)
        self.keyring = fleet_keyring(settings)
        self.give_up_after_s = give_up_after_s
        self.process_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self.reply_channel = self.keys.reply_channel(self.process_id)
        self.redis = async_client(settings.redis_url_resolved(), max_connections=REDIS_MAX_CONNECTIONS)
        self.bundles = BundleCache(self.redis, self.keys, self.keyring)
        self.publisher = Publisher(app, self.keyring)
        self._attaching: list[tuple[tuple[str, str, bool], asyncio.Future[Any]]] = []
        self._waiting: defaultdict[str, list[asyncio.Future[bytes | None]]] = defaultdict(list)
        self._reader: asyncio.Task[None] | None = None
        self._pubsub: Any = None
        self.scripts = Scripts(self.redis, {"attach": ATTACH, "start": START, "complete": COMPLETE})
        self._completing: list[tuple[tuple[str, str, bytes], asyncio.Future[Any]]] = []
        self._abort_listeners: list[Callable[[str], None]] = []
        self._hosted_runs: list[Callable[[], Iterable[str]]] = []
        self._outage_log = LogThrottle()
        self._closing = False
        self._unreachable_since: float | None = None

    def on_abort(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call `listener(run)` when a run is aborted; returns the function that stops it."""
        self._abort_listeners.append(listener)
        return lambda: self._abort_listeners.remove(listener)

    def watch_runs(self, hosted: Callable[[], Iterable[str]]) -> None:
        """`hosted()` names runs with actions in this process: their aborts are also looked for in Redis."""
        self._hosted_runs.append(hosted)

    async def start(self) -> None:
        await self.scripts.load()
        self._pubsub = self.redis.pubsub()
        await self._pubsub.subscribe(self.reply_channel, self.keys.abort_channel)
        self._reader = asyncio.ensure_future(self._read())

    async def close(self) -> None:
        """Stop reading and close the connections, within `CLOSE_TIMEOUT_S` a step whatever state they are in (a
        client interrupted by Ctrl-C must not hang here)."""
        self._closing = True
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.wait({self._reader}, timeout=CLOSE_TIMEOUT_S)
        for step in (self._pubsub.aclose() if self._pubsub is not None else None, self.redis.aclose()):
            if step is None:
                continue
            try:
                await asyncio.wait_for(step, CLOSE_TIMEOUT_S)
            except (asyncio.TimeoutError, Exception) as exc:
                system_logger.debug("closing a Redis connection failed: %r", exc)
        await asyncio.get_running_loop().run_in_executor(None, self.publisher.close)

    # Notifications: the reply channel, and rechecks against Redis for what pub/sub may have dropped.
    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = Backoff()
        next_check = loop.time() + RECHECK_INTERVAL_S
        while not self._closing:  # redis-py may turn a cancellation into a connection error: the flag still holds
            try:
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=RECHECK_INTERVAL_S)
                if message is not None:
                    self._on_message(text_of(message["channel"]), message["data"])
                if loop.time() >= next_check:
                    await self._recheck()
                    next_check = loop.time() + RECHECK_INTERVAL_S
                self._reachable()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._unreachable(exc)
                await asyncio.sleep(backoff.next_delay())
                next_check = 0.0  # whatever was missed meanwhile is looked for as soon as Redis answers

    def _reachable(self) -> None:
        if self._unreachable_since is not None:
            system_logger.warning("Redis answers again after %.1fs", time.monotonic() - self._unreachable_since)
            self._unreachable_since = None

    def _unreachable(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._unreachable_since is None:
            self._unreachable_since = now
        held = self._outage_log.ready()
        if held is not None:
            more = f" ({held} similar failures not logged)" if held else ""
            system_logger.warning("Redis is unreachable (%s); retrying with back-off%s", exc, more)
        if self.give_up_after_s is not None and now - self._unreachable_since >= self.give_up_after_s:
            url = redact(self.settings.redis_url_resolved())
            error = RuntimeSystemError(
                "RedisUnavailable",
                f"Redis at {url} has been unreachable for {now - self._unreachable_since:.0f}s ({exc}): "
                "check redis.url (FLYTE_CELERY_REDIS_URL) and that the server is up",
            )
            self._fail_waits(lambda _run: error)

    def _on_message(self, channel: str, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        key, _, outcome = raw.partition(b"\n")  # run and action names hold no newline
        self._dispatch(channel, key.decode("utf-8", "replace"), outcome or None)

    def _dispatch(self, channel: str, data: str, outcome: bytes | None = None) -> None:
        if channel == self.keys.abort_channel:
            for listener in list(self._abort_listeners):
                listener(data)
            return
        for future in self._waiting.pop(data, ()):
            if not future.done():
                future.set_result(outcome)

    def _fail_waits(self, error_for: Callable[[str], Exception | None]) -> None:
        for key in list(self._waiting):
            error = error_for(key.rpartition(":")[0])
            if error is None:
                continue
            for future in self._waiting.pop(key, ()):
                if not future.done():
                    future.set_exception(error)

    async def _recheck(self) -> None:
        """Wake the waits whose action has a result, fail those whose run is gone, and abort the hosted runs marked
        aborted (all missed notifications)."""
        waits = list(self._waiting)
        waited_runs = sorted({key.rpartition(":")[0] for key in waits})
        hosted = sorted({run for source in self._hosted_runs for run in source()})
        if not waits and not hosted:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in waits:
                run, _, action = key.rpartition(":")
                pipe.exists(self.keys.result(run, action))
            for run in waited_runs:
                pipe.exists(self.keys.run(run))
            for run in hosted:
                pipe.exists(self.keys.aborted(run))
            found = iter(await pipe.execute())
        done = [next(found) for _ in waits]
        present = [next(found) for _ in waited_runs]
        aborted = [next(found) for _ in hosted]
        for key, finished in zip(waits, done, strict=True):
            if finished:
                self._dispatch(self.reply_channel, key)
        lost = {run for run, exists in zip(waited_runs, present, strict=True) if not exists}
        if lost:
            system_logger.error("the records of run(s) %s are gone from Redis; failing their waits", sorted(lost))
            self._fail_waits(lambda run: RunLostError(run) if run in lost else None)
        for run, is_aborted in zip(hosted, aborted, strict=True):
            if is_aborted:
                self._dispatch(self.keys.abort_channel, run)

    # Waiting for an action (publishing it first when nobody has).
    async def wait_for(
        self,
        run: str,
        action: str,
        publication: Publication | None,
        *,
        release: Callable[[], None] | None = None,
        republish: bool = False,
        eager: bool = False,
    ) -> Outcome:
        """The outcome of `run`/`action`, publishing its message first if nobody has yet (or, with `republish`,
        whenever it has no result).

        `release` (if given) is called once the wait is known to be real, i.e. the action has no result yet.
        `eager` publishes while the attach is in flight instead of after it (a round trip less): for an action that
        surely has no result yet, the first call of a first attempt; a needless copy would only find it finished.

        Raises:
            RunLostError: If the run's records disappear from Redis while waiting.
            UnsafePayloadError: If the stored result was not sealed for this run and action.
        """
        key = notification(run, action)
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._waiting[key].append(future)
        try:
            publishing = None
            if eager and publication is not None:
                publishing = asyncio.ensure_future(self.publisher.publish(publication))
            try:
                result, must_publish = await self._attach_batched(run, action, republish)
                if publishing is None and result is None and must_publish and publication is not None:
                    publishing = asyncio.ensure_future(self.publisher.publish(publication))
                if publishing is not None:
                    await publishing
            except BaseException:
                if publishing is not None:
                    publishing.cancel()
                    # Not published after all: let the next attempt (a retry, a take-over) publish it.
                    await self.redis.delete(self.keys.enqueued(run, action))
                raise
            if result is None:
                if release is not None:
                    release()
                result = await future
                if result is None:  # a notification without the outcome, or a recheck: read it
                    result = cast("bytes | None", await self.redis.get(self.keys.result(run, action)))
                if result is None:
                    raise RuntimeSystemError("ResultMissing", f"action {run}/{action} finished but has no result")
            return decode_outcome(self.keyring, result, run, action)
        finally:
            waiting = self._waiting.get(key)
            if waiting is not None and future in waiting:
                waiting.remove(future)
                if not waiting:
                    del self._waiting[key]

    # Attaching: every wait registered in one loop tick goes to Redis in one pipelined round trip.
    async def _attach_batched(self, run: str, action: str, republish: bool) -> tuple[bytes | None, int]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._attaching.append(((run, action, republish), future))
        if len(self._attaching) == 1:
            loop.call_soon(lambda: asyncio.ensure_future(self._flush_attaching()))
        result, must_publish = await future
        return result, int(must_publish)

    async def _flush_attaching(self) -> None:
        batch, self._attaching = self._attaching, []
        tokens = [secrets.token_hex(8) for _ in batch]

        def build(pipe: Any) -> None:
            for ((run, action, republish), _), token in zip(batch, tokens, strict=True):
                keys = [self.keys.result(run, action), self.keys.waiters(run, action), self.keys.enqueued(run, action)]
                self.scripts.queue(
                    pipe, "attach", keys, [self.reply_channel, self.keys.result_ttl_s, token, int(republish)]
                )

        try:
            replies = await self.scripts.execute(build)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            if not future.done():
                future.set_result(reply)

    # An action's start and end.
    async def start_checks(self, run: str, action: str, message: str | None) -> Start:
        """Whether `run`/`action` may start, in one round trip that, given the action's message, also stores it and
        takes the action's lease. A live lease held elsewhere makes this delivery a duplicate."""
        member = lease_member(run, action)
        now = time.time()
        keys = [
            self.keys.run(run),
            self.keys.result(run, action),
            self.keys.aborted(run),
            self.keys.message(run, action),
        ]

        def build(pipe: Any) -> None:
            self.scripts.queue(pipe, "start", keys, [message or "", self.keys.result_ttl_s])
            if message is not None:
                pipe.zadd(self.keys.leases, {member: now + LEASE_TTL_S}, nx=True)
                pipe.zscore(self.keys.leases, member)

        async def undo(replies: list[Any]) -> None:
            if message is not None and replies[1] == 1:
                await self.redis.zrem(self.keys.leases, member)  # the lease this failed attempt took

        replies = await self.scripts.execute(build, undo)
        decision = Start(text_of(replies[0]))
        if message is None:
            return decision
        added, expiry = replies[1], replies[2]
        if decision is not Start.START:
            if added:
                await self.redis.zrem(self.keys.leases, member)  # a lease for an action that will not run
            return decision
        if not added:
            if expiry is not None and float(expiry) > now:
                return Start.DUPLICATE
            await self.redis.zadd(self.keys.leases, {member: now + LEASE_TTL_S}, xx=True)  # expired: ours now
        return Start.START

    async def complete(self, run: str, action: str, outcome: Outcome, what: str) -> bool:
        """Record the outcome (first one wins), drop the action's lease and notify its waiters; True if this call
        wrote it. Nothing is written for a run whose records are gone. Completions requested in one loop tick go
        to Redis in one pipeline."""
        blob = encode_outcome(self.keyring, outcome, run, action, what)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._completing.append(((run, action, blob), future))
        if len(self._completing) == 1:
            loop.call_soon(lambda: asyncio.ensure_future(self._flush_completing()))
        written = await future
        if written == -1:
            system_logger.error("run %s's records are gone from Redis: the outcome of %s is not recorded", run, what)
        return bool(written == 1)

    async def _flush_completing(self) -> None:
        batch, self._completing = self._completing, []

        def build(pipe: Any) -> None:
            for (run, action, blob), _ in batch:
                keys = [self.keys.run(run), self.keys.result(run, action), self.keys.waiters(run, action),
                        self.keys.message(run, action), self.keys.enqueued(run, action)]  # fmt: skip
                along = int(len(blob) <= MAX_OUTCOME_IN_NOTIFICATION_BYTES)
                args = [blob, self.keys.result_ttl_s, notification(run, action), along]
                self.scripts.queue(pipe, "complete", keys, args)
                pipe.zrem(self.keys.leases, lease_member(run, action))

        try:
            replies = await self.scripts.execute(build)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), written in zip(batch, replies[::2], strict=True):
            if not future.done():
                future.set_result(written)


def text_of(value: Any) -> str:
    """A Redis reply (bytes or str) as text."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
