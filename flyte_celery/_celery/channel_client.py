"""One Redis client object per connection pool for the bookkeeping of the worker's broker channel.

kombu's Redis channel makes a new `redis.Redis` object for each of its synchronous calls that is not given one: the
unacknowledged-message bookkeeping does two per message (on delivery and on acknowledgement). Each copies redis-py's
table of response callbacks, about 60 µs of the consumer's CPU, and the one on delivery sits on every action's way to
its pool process. The objects only borrow connections from the channel's pool, so one object per pool does the same
work; it is made again when the channel's pool is replaced (a reconnection).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any


def share_channel_client(channel: Any) -> bool:
    """Make `channel` (a kombu Redis channel) reuse one client object per connection pool; False (and `channel`
    left as it was) for a channel of another transport."""
    make_client = getattr(channel, "_create_client", None)
    if make_client is None or not hasattr(channel, "conn_or_acquire") or not hasattr(channel, "pool"):
        return False
    channel.conn_or_acquire = _shared_conn_or_acquire(channel, make_client)
    return True


def _shared_conn_or_acquire(
    channel: Any, make_client: Callable[[], Any]
) -> Callable[[Any], AbstractContextManager[Any]]:
    shared: list[Any] = []

    @contextmanager
    def conn_or_acquire(client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        pool = channel.pool
        if not shared or shared[0].connection_pool is not pool:
            shared[:] = [make_client()]
        yield shared[0]

    return conn_or_acquire
