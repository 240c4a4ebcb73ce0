"""The per-process Celery runtime: one async Redis client and what works through it.

Every process that waits on actions (a worker pool process, a hybrid client, a client waiting on a run) has one
`Runtime` on one event loop: its reply channel (`reply_channel`), its publisher (`publisher`, or the attach script
itself: `direct_publish`), its code bundles (`bundles`), and the action records: attaching a wait (publishing the
action when nobody has) and an action's completion (its start is checked on the task body's thread:
`start_checks`). Attaches and completions requested in one loop tick go to Redis in one pipeline. The same scripts
keep the run's action index (`action_index`): queued at the attach that publishes, ended at the completion.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any, Final, cast

from celery import Celery

from flyte_celery._celery.action_index import end_entry, outcome_phase, queued_entry
from flyte_celery._celery.action_logs import SAVE_LOGS, queue_save
from flyte_celery._celery.bundles import BundleCache
from flyte_celery._celery.direct_publish import direct_messages
from flyte_celery._celery.keys import MAX_ACTION_INDEX_FIELDS, Keys, lease_member
from flyte_celery._celery.offload import breach, outcome_of, store_outcome
from flyte_celery._celery.outcome import Outcome, encode_outcome
from flyte_celery._celery.publisher import Publication, Publisher
from flyte_celery._celery.records import (
    ATTACH,
    COMPLETE,
    notification,
    outcome_travels,
)
from flyte_celery._celery.reply_channel import CLOSE_TIMEOUT_S, ReplyChannel
from flyte_celery._celery.scripts import Scripts
from flyte_celery._config_model import Settings
from flyte_celery._context import ROOT_ACTION_NAME
from flyte_celery._keyrings import fleet_keyring
from flyte_celery._logging import system_logger
from flyte_celery._redis_connect import async_client
from flyte_celery.errors import RuntimeSystemError, StorageError

REDIS_MAX_CONNECTIONS: Final = 32  # per process; waiters queue for a connection beyond that


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
        self.direct = direct_messages(app, settings.redis_url_resolved(), self.keyring)
        self.inline_max_bytes = settings.storage.inline_max_bytes
        self.scripts = Scripts(self.redis, {"attach": ATTACH, "complete": COMPLETE, "logs": SAVE_LOGS})
        self.replies = ReplyChannel(
            self.redis, self.keys, self.reply_channel, settings.redis_url_resolved(), give_up_after_s
        )
        self.on_abort = self.replies.on_abort
        self.watch_runs = self.replies.watch_runs
        self._attaching: list[tuple[tuple[str, str, bool, str, tuple[str, bytes] | None], asyncio.Future[Any]]] = []
        self._completing: list[tuple[tuple[str, str, bytes, list[Any]], asyncio.Future[Any]]] = []
        self._completing_logs: list[tuple[str, str, bytes]] = []  # lines of those actions, written before them

    async def start(self) -> None:
        await self.scripts.load()
        await self.replies.start()

    async def close(self) -> None:
        """Stop reading and close the connections, a step at most `CLOSE_TIMEOUT_S` whatever state they are in (a
        client interrupted by Ctrl-C must not hang here)."""
        await self.replies.close()
        try:
            await asyncio.wait_for(self.redis.aclose(), CLOSE_TIMEOUT_S)
        except (asyncio.TimeoutError, Exception) as exc:
            system_logger.debug("closing the Redis client failed: %r", exc)
        await asyncio.get_running_loop().run_in_executor(None, self.publisher.close)

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
        Where the broker is our Redis, the attach script publishes the message itself (see `direct_publish`).
        Elsewhere kombu publishes it, after the attach or, with `eager`, while the attach is in flight (a round trip
        less): for an action that surely has no result yet, the first call of a first attempt; a needless copy
        would only find it finished.

        Raises:
            RunLostError: If the run's records disappear from Redis while waiting.
            UnsafePayloadError: If the stored result was not sealed for this run and action.
        """
        key = notification(run, action)
        future = self.replies.expect(key)
        try:
            if publication is not None and self.direct is not None:
                result = await self._attach_publishing(run, action, publication, republish)
            else:
                result = await self._attach_then_publish(run, action, publication, republish, eager)
            if result is None:
                if release is not None:
                    release()
                result = await future
                if result is None:  # a notification without the outcome, or a recheck: read it
                    result = cast("bytes | None", await self.redis.get(self.keys.result(run, action)))
                if result is None:
                    raise RuntimeSystemError("ResultMissing", f"action {run}/{action} finished but has no result")
            return await outcome_of(self.keyring, result, run, action)
        finally:
            self.replies.forget(key, future)

    async def _attach_publishing(
        self, run: str, action: str, publication: Publication, republish: bool
    ) -> bytes | None:
        """Attach, the attach script pushing the action's message if it is to be published (see `direct_publish`)."""
        assert self.direct is not None
        direct = self.direct.encode(publication)
        message = (direct.routing_key, direct.raw)
        result, published = await self._attach_batched(run, action, republish, queued_entry(publication), message)
        if published:
            self.direct.pushed(direct)
            self.publisher.sent_events.queue([publication])
        return result

    async def _attach_then_publish(
        self, run: str, action: str, publication: Publication | None, republish: bool, eager: bool
    ) -> bytes | None:
        """Attach, then publish through kombu if the action is to be published (with `eager`, during the attach)."""
        entry = queued_entry(publication) if publication is not None else ""
        publishing = None
        if eager and publication is not None:
            publishing = asyncio.ensure_future(self.publisher.publish(publication))
        try:
            result, must_publish = await self._attach_batched(run, action, republish, entry, None)
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
        return result

    # Attaching: every wait registered in one loop tick goes to Redis in one pipelined round trip.
    async def _attach_batched(
        self, run: str, action: str, republish: bool, entry: str, message: tuple[str, bytes] | None
    ) -> tuple[bytes | None, int]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._attaching.append(((run, action, republish, entry, message), future))
        if len(self._attaching) == 1:
            loop.call_soon(lambda: asyncio.ensure_future(self._flush_attaching()))
        result, must_publish = await future
        return result, int(must_publish)

    async def _flush_attaching(self) -> None:
        batch, self._attaching = self._attaching, []
        tokens = [secrets.token_hex(8) for _ in batch]

        def build(pipe: Any) -> None:
            for ((run, action, republish, entry, message), _), token in zip(batch, tokens, strict=True):
                keys = [self.keys.result(run, action), self.keys.waiters(run, action), self.keys.enqueued(run, action)]
                args: list[Any] = [self.reply_channel, self.keys.result_ttl_s, token, int(republish)]
                if entry:
                    keys.append(self.keys.actions(run))
                    args += [action, entry, self.keys.run_ttl_s, MAX_ACTION_INDEX_FIELDS]
                    if message is not None:
                        keys.append(message[0])
                        args.append(message[1])
                self.scripts.queue(pipe, "attach", keys, args)

        await self._execute_for([future for _, future in batch], build, lambda replies: replies)

    # An action's end (its start is checked on the task body's thread: see `start_checks`).
    async def complete(
        self,
        run: str,
        action: str,
        outcome: Outcome,
        what: str,
        *,
        store_in: str | None = None,
        max_bytes: int | None = None,
        logs: bytes | None = None,
    ) -> bool:
        """Record the outcome (first one wins), drop the action's lease and notify its waiters; True if this call
        wrote it. Nothing is written for a run whose records are gone. Completions requested in one loop tick go
        to Redis in one pipeline.

        A successful outcome over `max_bytes` (the task's `max_inline_io_bytes`) is recorded as
        `InlineIOMaxBytesBreached` instead; one over `storage.inline_max_bytes` is written under `store_in` (the
        run's metadata directory) and the record points to it. `logs` (the action's printed and logged lines, see
        `action_logs`) are written in the same pipeline, before the outcome.
        """
        blob = encode_outcome(self.keyring, outcome, run, action, what)
        too_big = breach(len(blob), max_bytes, f"outputs of {what}") if max_bytes is not None else None
        if outcome.error is None and too_big is not None:
            outcome = Outcome(error=too_big)  # what the index shows, too
            blob = encode_outcome(self.keyring, outcome, run, action, what)
        elif outcome.error is None and store_in is not None and len(blob) > self.inline_max_bytes:
            try:
                blob = await store_outcome(self.keyring, store_in, run, action, blob)
            except StorageError as err:  # recorded instead: nobody must wait for an outcome that cannot be stored
                outcome = Outcome(error=err)
                blob = encode_outcome(self.keyring, outcome, run, action, what)
        ended = time.time()
        run_phase = outcome_phase(outcome).value if action == ROOT_ACTION_NAME else ""
        index = [action, end_entry(outcome, ended), run_phase, ended]  # the index's arguments of COMPLETE
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._completing.append(((run, action, blob, index), future))
        if logs is not None:
            self._completing_logs.append((run, action, logs))
        if len(self._completing) == 1:
            loop.call_soon(lambda: asyncio.ensure_future(self._flush_completing()))
        written = await future
        if written == 1:
            # A parent hosted here takes the outcome now rather than when Redis's notification comes back to us.
            self.replies.notify_here(notification(run, action), blob if outcome_travels(blob) else None)
        if written == -1:
            system_logger.error("run %s's records are gone from Redis: the outcome of %s is not recorded", run, what)
        return bool(written == 1)

    async def _flush_completing(self) -> None:
        batch, self._completing = self._completing, []
        logs, self._completing_logs = self._completing_logs, []

        def build(pipe: Any) -> None:
            for run, action, text in logs:
                queue_save(self.scripts, pipe, self.keys, run, action, text)
            for (run, action, blob, index), _ in batch:
                keys = [self.keys.run(run), self.keys.result(run, action), self.keys.waiters(run, action),
                        self.keys.message(run, action), self.keys.enqueued(run, action),
                        self.keys.actions(run)]  # fmt: skip
                along = int(outcome_travels(blob))
                args = [blob, self.keys.result_ttl_s, notification(run, action), along, *index]
                self.scripts.queue(pipe, "complete", keys, args)
                pipe.zrem(self.keys.leases, lease_member(run, action))

        # Each completion's replies: its script's, then the lease's ZREM; the log saves come first.
        await self._execute_for([future for _, future in batch], build, lambda replies: replies[len(logs) :: 2])

    async def _execute_for(
        self,
        futures: list[asyncio.Future[Any]],
        build: Callable[[Any], None],
        answers: Callable[[list[Any]], list[Any]],
    ) -> None:
        """Run one pipelined batch and settle the futures of its callers: each with its answer (`answers` picks
        them from the replies, in order), or all with the error if the batch failed."""
        try:
            replies = await self.scripts.execute(build)
        except Exception as exc:
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
            return
        for future, answer in zip(futures, answers(replies), strict=True):
            if not future.done():
                future.set_result(answer)
