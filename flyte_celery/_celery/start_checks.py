"""Whether a delivered action may start: run on the Celery task body's thread, before the action reaches the loop.

One round trip (the `records.START` script and the lease) decides: run it, record it as aborted, or drop the
delivery (the action finished already, another worker holds its live lease, or its run's records are gone). Made
synchronously by the thread that received the message, it costs half what the same pipeline costs through the
event loop, and a dropped delivery never reaches the loop at all: on a sequential chain of children this was the
step where flyte-celery lost most against raw Celery, whose pool process reads its result record synchronously too.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Final

from redis.exceptions import NoScriptError, RedisError, ResponseError

from flyte_celery._celery.keys import LEASE_TTL_S, MAX_ACTION_INDEX_FIELDS, Keys, lease_member
from flyte_celery._celery.records import START, Start
from flyte_celery._celery.reply_channel import text_of
from flyte_celery._logging import system_logger
from flyte_celery._redis_connect import sync_client

REDIS_ATTEMPTS: Final = 6  # a check survives a Redis hiccup of about 6 s, as the loop's writes do
REDIS_RETRY_DELAY_S: Final = 0.2


class StartChecks:
    """The start checks of one pool process, on a synchronous client of its own."""

    def __init__(self, redis_url: str, keys: Keys) -> None:
        self.client = sync_client(redis_url)
        self.keys = keys
        self.sha = hashlib.sha1(START.encode()).hexdigest()

    def check(self, run: str, action: str, message: str) -> Start:
        """Whether `run`/`action` may start; unless it is lost or finished, its `message` (what a sweeper re-publishes)
        is stored, and when it may start, its lease is taken. A live lease held elsewhere makes this a duplicate.

        Raises:
            RedisError: If Redis stays unreachable through `REDIS_ATTEMPTS` tries.
        """
        # The lease's expiry also tells a retried attempt the lease it took itself (its reply was lost with its
        # connection) from another worker's.
        lease_until = time.time() + LEASE_TTL_S
        for attempt in range(REDIS_ATTEMPTS):
            try:
                return self._check(run, action, message, lease_until)
            except (RedisError, OSError) as exc:
                if attempt + 1 == REDIS_ATTEMPTS:
                    system_logger.error("gave up on the start checks of %s/%s: %s", run, action, exc)
                    raise
                time.sleep(REDIS_RETRY_DELAY_S * 2**attempt)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.client.close()

    def _check(self, run: str, action: str, message: str, lease_until: float) -> Start:
        member = lease_member(run, action)
        now = time.time()
        keys = [
            self.keys.run(run),
            self.keys.result(run, action),
            self.keys.aborted(run),
            self.keys.message(run, action),
            self.keys.actions(run),
        ]
        args = [message, self.keys.result_ttl_s, action, now, MAX_ACTION_INDEX_FIELDS]
        replies = self._run(keys, args, member, lease_until)
        decision = Start(text_of(replies[0]))
        added, expiry = replies[1], replies[2]
        ours = bool(added) or (expiry is not None and float(expiry) == lease_until)
        if decision is not Start.START:
            if ours:
                self.client.zrem(self.keys.leases, member)  # a lease for an action that will not run
            return decision
        if not ours:
            if expiry is not None and float(expiry) > now:
                return Start.DUPLICATE
            self.client.zadd(self.keys.leases, {member: now + LEASE_TTL_S}, xx=True)  # expired: ours now
        return Start.START

    def _run(self, keys: list[str], args: list[Any], member: str, lease_until: float) -> list[Any]:
        """The script's reply, whether the lease was added, and the lease's expiry; the script is loaded again if
        Redis lost it (a restart), after undoing the lease this attempt took."""
        commands = [
            ("EVALSHA", self.sha, len(keys), *keys, *args),
            ("ZADD", self.keys.leases, "NX", lease_until, member),
            ("ZSCORE", self.keys.leases, member),
        ]
        for _ in range(2):
            replies = self._send(commands)
            if not isinstance(replies[0], NoScriptError):
                error = next((reply for reply in replies if isinstance(reply, Exception)), None)
                if error is not None:
                    raise error
                return replies
            if replies[1] == 1:
                self.client.zrem(self.keys.leases, member)
            self.client.script_load(START)
        raise RedisError("Redis lost the start-check script again right after it was loaded")

    def _send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """The raw replies to `commands`, sent together on one pooled connection; an error reply in its command's
        place. A redis-py pipeline object costs about 30 µs more per check, on every action's way to its start."""
        pool = self.client.connection_pool
        connection: Any = pool.get_connection()
        try:
            return connection.retry.call_with_retry(  # type: ignore[no-any-return]
                lambda: _send_and_read(connection, commands), lambda _error: connection.disconnect()
            )
        except BaseException:
            connection.disconnect()  # its replies may still be on the way: never hand it to the next caller
            raise
        finally:
            pool.release(connection)


def _send_and_read(connection: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    connection.send_packed_command(connection.pack_commands(commands))
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(connection.read_response())
        except ResponseError as error:
            replies.append(error)
    return replies
