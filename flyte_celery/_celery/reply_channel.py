"""A process's reply channel: the notifications of finished actions it waits for, and of aborted runs.

Waiting is demultiplexed: the process subscribes once to its own channel, and each finished action notifies the
channels registered in its waiters set (with its outcome when small). Pub/sub drops what is published while a
connection is re-established, so every `RECHECK_INTERVAL_S` the waits are also checked against Redis itself; that
check also notices runs whose records are gone (`RunLostError`) and aborts that were missed. Outages are retried
with back-off and logged sparingly.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, Final

import redis.asyncio as aioredis

from flyte_celery._celery.keys import Keys
from flyte_celery._logging import system_logger
from flyte_celery._throttle import Backoff, LogThrottle
from flyte_celery._urls import redact
from flyte_celery.errors import RunLostError, RuntimeSystemError

RECHECK_INTERVAL_S: Final = 2.0  # how often waits are checked against Redis, in case a notification was missed
CLOSE_TIMEOUT_S: Final = 2.0


class ReplyChannel:
    """Reads a process's reply channel and the abort channel; resolves the waits registered with `expect`.

    Args:
        redis: The process's client.
        keys: Key names.
        channel: This process's reply channel.
        redis_url: Shown (redacted) when Redis stays unreachable.
        give_up_after_s: Fail every wait once Redis has been unreachable this long (None: wait it out).
    """

    def __init__(
        self, redis: aioredis.Redis, keys: Keys, channel: str, redis_url: str, give_up_after_s: float | None
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.channel = channel
        self.redis_url = redis_url
        self.give_up_after_s = give_up_after_s
        self._waiting: defaultdict[str, list[asyncio.Future[bytes | None]]] = defaultdict(list)
        self._abort_listeners: list[Callable[[str], None]] = []
        self._hosted_runs: list[Callable[[], Iterable[str]]] = []
        self._reader: asyncio.Task[None] | None = None
        self._pubsub: Any = None
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

    def expect(self, key: str) -> asyncio.Future[bytes | None]:
        """A future resolved when the action `key` (`run:action`) is notified finished (with its outcome, or None
        when it must be read), or failed when its run is lost or Redis gone; `forget` it once done."""
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._waiting[key].append(future)
        return future

    def notify_here(self, key: str, outcome: bytes | None) -> None:
        """Resolve this process's waits for the action `key` now: it ended here and its outcome is recorded. The
        notification Redis also sends then finds them resolved."""
        self._dispatch(self.channel, key, outcome)

    def forget(self, key: str, future: asyncio.Future[bytes | None]) -> None:
        waiting = self._waiting.get(key)
        if waiting is not None and future in waiting:
            waiting.remove(future)
            if not waiting:
                del self._waiting[key]

    async def start(self) -> None:
        self._pubsub = self.redis.pubsub()
        await self._pubsub.subscribe(self.channel, self.keys.abort_channel)
        self._reader = asyncio.ensure_future(self._read())

    async def close(self) -> None:
        """Stop reading, within `CLOSE_TIMEOUT_S` a step whatever state the connection is in."""
        self._closing = True
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.wait({self._reader}, timeout=CLOSE_TIMEOUT_S)
        if self._pubsub is not None:
            try:
                await asyncio.wait_for(self._pubsub.aclose(), CLOSE_TIMEOUT_S)
            except (asyncio.TimeoutError, Exception) as exc:
                system_logger.debug("closing the reply channel failed: %r", exc)

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
            url = redact(self.redis_url)
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
                self._dispatch(self.channel, key)
        lost = {run for run, exists in zip(waited_runs, present, strict=True) if not exists}
        if lost:
            system_logger.error("the records of run(s) %s are gone from Redis; failing their waits", sorted(lost))
            self._fail_waits(lambda run: RunLostError(run) if run in lost else None)
        for run, is_aborted in zip(hosted, aborted, strict=True):
            if is_aborted:
                self._dispatch(self.keys.abort_channel, run)


def text_of(value: Any) -> str:
    """A Redis reply (bytes or str) as text."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
