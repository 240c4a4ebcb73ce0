"""Redis clients made from the configured URL, with the same resilient connection options in every process.

Accepted URLs (``REDIS_URL_SCHEMES``):

- ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS) and ``unix://[[user]:password@]/path?db=N``,
  read by redis-py's ``from_url`` (its query options included).
- ``redis+sentinel://[[user]:password@]host1[:port1][,host2[:port2],...]/<service_name>[/<db>]``, and
  ``rediss+sentinel://...`` for TLS to the master. The sentinels (port 26379 by default) are asked where the master of
  ``service_name`` is whenever a connection is made, so clients follow failovers. The user and password are the
  master's; sentinels that require a password get it from the ``sentinel_password`` query parameter, the only one
  accepted (``redis+sentinel://:pw@h1:26379,h2:26379/mymaster/2?sentinel_password=spw``). Sentinels are spoken to over
  plain TCP. Kombu's broker form (``sentinel://h1:26379;sentinel://h2:26379``) is rejected, naming this one.

Every client retries a command that fails with a connection error or a timeout, but not with refused credentials
(exponential backoff with jitter, ``RETRIES`` times, at least ``MIN_RIDE_OUT_S`` in all), so one command rides out a
Redis restart of a few seconds; PINGs a pooled connection idle for over ``HEALTH_CHECK_INTERVAL_S`` before using it;
and has TCP keepalive, a connect timeout and a read timeout. A retried command runs twice if the connection broke
after Redis ran it: send idempotent commands and scripts. The read timeout does not cut pub/sub waits short: redis-py
8 reads with the ``timeout`` given to ``get_message`` (none for ``listen()``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel as asentinel
import redis.sentinel as sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import EqualJitterBackoff, NoBackoff
from redis.exceptions import AuthenticationError, AuthorizationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from flyte_celery._urls import redact
from flyte_celery.errors import ConfigError

_T = TypeVar("_T")

REDIS_URL_SCHEMES: Final = ("redis://", "rediss://", "unix://", "redis+sentinel://", "rediss+sentinel://")
CONFIG_KEY: Final = "redis.url"
DEFAULT_SENTINEL_PORT: Final = 26379

RETRIES: Final = 6
# Equal jitter waits between half and all of min(cap, base * 2**n) before retry n, so the waits add up to at least
# 0.25 + 0.5 + 1 + 1 + 1 + 1 s: a restart shorter than that costs a command some latency, not an error.
RETRY_BACKOFF_BASE_S: Final = 0.25
RETRY_BACKOFF_CAP_S: Final = 2.0
MIN_RIDE_OUT_S: Final = sum(min(RETRY_BACKOFF_CAP_S, RETRY_BACKOFF_BASE_S * 2**n) / 2 for n in range(1, RETRIES + 1))
HEALTH_CHECK_INTERVAL_S: Final = 5  # redis-py takes whole seconds
SOCKET_CONNECT_TIMEOUT_S: Final = 5.0
# Far above any command this project sends; it ends a read from a server that stopped answering (no RST, no FIN).
SOCKET_TIMEOUT_S: Final = 10.0

_SENTINEL_FORM: Final = "redis+sentinel://[[user]:password@]host1:port1[,host2:port2,...]/<master_name>[/<db>]"


def sync_client(url: str) -> redis.Redis:
    """Return a synchronous client for ``url`` with the module's resilient options.

    Args:
        url: A URL with one of ``REDIS_URL_SCHEMES`` (see the module docstring).

    Returns:
        A client that owns its connection pool: ``client.close()`` closes it (and the connections to sentinels).

    Raises:
        ConfigError: If the URL is malformed; the message names the problem and shows the URL with passwords redacted.
    """
    target, options = _parse(url), _options(url, is_async=False)
    if target is None:
        return _from_url(url, lambda: redis.Redis.from_url(url, **options))
    manager = sentinel.Sentinel(  # type: ignore[no-untyped-call]
        target.sentinels, sentinel_kwargs=target.sentinel_options(is_async=False), **options
    )
    connection_class = _SentinelSSLConnection if target.tls else _SentinelConnection
    client: redis.Redis = manager.master_for(  # type: ignore[no-untyped-call]
        target.service_name, connection_pool_class=_SentinelPool, connection_class=connection_class, **target.master
    )
    return client


def async_client(url: str, *, max_connections: int | None = None) -> aioredis.Redis:
    """Return an asyncio client for ``url`` with the module's resilient options.

    Args:
        url: A URL with one of ``REDIS_URL_SCHEMES`` (see the module docstring).
        max_connections: Bound the pool to this many connections; a command that finds them all busy waits for one
            (for as long as it takes) rather than failing. ``None`` leaves redis-py's default pool.

    Returns:
        A client that owns its connection pool: ``await client.aclose()`` closes it (and the connections to
        sentinels).

    Raises:
        ConfigError: If the URL is malformed; the message names the problem and shows the URL with passwords redacted.
        ValueError: If ``max_connections`` is below 1.
    """
    if max_connections is not None and max_connections < 1:
        raise ValueError(f"max_connections must be at least 1, got {max_connections}")
    target, options = _parse(url), _options(url, is_async=True)
    bounded: dict[str, Any] = {} if max_connections is None else {"max_connections": max_connections, "timeout": None}
    if target is None and not bounded:
        return _from_url(url, lambda: aioredis.Redis.from_url(url, **options))
    if target is None:
        # from_pool hands the pool to the client, so aclose() closes it; Redis(connection_pool=pool) would not.
        return aioredis.Redis.from_pool(
            _from_url(url, lambda: aioredis.BlockingConnectionPool.from_url(url, **options, **bounded))
        )
    manager = asentinel.Sentinel(  # type: ignore[no-untyped-call]
        target.sentinels, sentinel_kwargs=target.sentinel_options(is_async=True), **options
    )
    client: aioredis.Redis = manager.master_for(
        target.service_name,
        connection_pool_class=_AsyncBlockingSentinelPool if bounded else _AsyncSentinelPool,
        connection_class=_AsyncSentinelSSLConnection if target.tls else _AsyncSentinelConnection,
        **target.master,
        **bounded,
    )
    return client


@dataclass(frozen=True)
class _SentinelTarget:
    sentinels: list[tuple[str, int]]
    service_name: str
    tls: bool
    master: dict[str, Any]  # db, username, password
    sentinel_password: str | None

    def sentinel_options(self, *, is_async: bool) -> dict[str, Any]:
        # No retries against one sentinel: discovery moves on to the next one, and a master connection that finds no
        # master retries the whole discovery with backoff.
        no_retry = (AsyncRetry if is_async else Retry)(NoBackoff(), 0)
        options = _options("redis://", is_async=is_async) | {"retry": no_retry}
        return options if self.sentinel_password is None else options | {"password": self.sentinel_password}


_Check = Callable[[Exception], bool]
_Fail = Callable[[Exception], Any] | Callable[[Exception, int], Any]
_AsyncDo = Callable[[], Awaitable[_T]]


def _and_retryable(check: _Check | None) -> _Check:
    # redis-py counts refused credentials as a ConnectionError, but waiting does not fix a password: retried, a
    # missing one kept a command busy for a minute (49 connections, connect and command retries nested).
    refused = (AuthenticationError, AuthorizationError)
    return lambda error: not isinstance(error, refused) and (check is None or check(error))


class _Retry(Retry):
    def call_with_retry(
        self, do: Callable[[], _T], fail: _Fail, is_retryable: _Check | None = None, with_failure_count: bool = False
    ) -> _T:
        return super().call_with_retry(do, fail, _and_retryable(is_retryable), with_failure_count)


class _AsyncRetry(AsyncRetry):
    async def call_with_retry(
        self, do: _AsyncDo[_T], fail: _Fail, is_retryable: _Check | None = None, with_failure_count: bool = False
    ) -> _T:
        return await super().call_with_retry(do, fail, _and_retryable(is_retryable), with_failure_count)


class _SentinelConnection(sentinel.SentinelManagedConnection):
    # redis-py 8.1 reconnects a dropped connection to its old address when it sends (redis-py#3874): a command retried
    # across a failover kept reaching the old master. connect() asks the sentinels where the master is first.
    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self.is_connected:
            self.connect()  # type: ignore[no-untyped-call]
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


class _SentinelSSLConnection(_SentinelConnection, sentinel.SentinelManagedSSLConnection):
    pass


class _AsyncSentinelConnection(asentinel.SentinelManagedConnection):
    # As _SentinelConnection.
    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self.is_connected:
            await self.connect()  # type: ignore[no-untyped-call]
        await super().send_packed_command(command, check_health)


class _AsyncSentinelSSLConnection(_AsyncSentinelConnection, asentinel.SentinelManagedSSLConnection):
    pass


class _SentinelPool(sentinel.SentinelConnectionPool):
    # The client owns this pool and the pool owns the Sentinel that made it: closing the client closes all three.
    def close(self) -> None:
        super().close()
        for client in self.sentinel_manager.sentinels:
            client.close()


class _AsyncSentinelPool(asentinel.SentinelConnectionPool):
    # As _SentinelPool.
    async def aclose(self) -> None:
        await super().aclose()
        for client in self.sentinel_manager.sentinels:
            await client.aclose()


class _AsyncBlockingSentinelPool(_AsyncSentinelPool, aioredis.BlockingConnectionPool):
    pass


def _options(url: str, *, is_async: bool) -> dict[str, Any]:
    # The options of every connection to a Redis server at `url` (its scheme decides whether it is over TCP).
    backoff = EqualJitterBackoff(cap=RETRY_BACKOFF_CAP_S, base=RETRY_BACKOFF_BASE_S)
    errors = (RedisConnectionError, RedisTimeoutError)
    options: dict[str, Any] = {
        "retry": _AsyncRetry(backoff, RETRIES, errors) if is_async else _Retry(backoff, RETRIES, errors),
        "health_check_interval": HEALTH_CHECK_INTERVAL_S,
        "socket_connect_timeout": SOCKET_CONNECT_TIMEOUT_S,
        "socket_timeout": SOCKET_TIMEOUT_S,
    }
    if not url.lower().startswith("unix://"):  # unix socket connections take no keepalive argument
        options["socket_keepalive"] = True  # with redis-py 8's probes: after 30 s idle, every 5 s, 3 of them
    return options


def _from_url(url: str, make: Callable[[], _T]) -> _T:
    try:
        return make()
    except ValueError as exc:  # redis-py's complaint about a query option
        raise _error(str(exc).rstrip("."), url) from None


def _error(problem: str, url: str) -> ConfigError:
    return ConfigError(f"{redact(url)!r}: {problem}", key=CONFIG_KEY)


def _parse(url: str) -> _SentinelTarget | None:
    scheme = url.partition("://")[0].lower() + "://" if "://" in url else ""
    if scheme == "sentinel://":
        raise _error(f"kombu's sentinel:// form is not accepted here: write {_SENTINEL_FORM}", url)
    if scheme not in REDIS_URL_SCHEMES:
        problem = f"unknown scheme {scheme!r}" if scheme else "no scheme"
        raise _error(f"{problem}; expected one of {', '.join(REDIS_URL_SCHEMES)}", url)
    if scheme.endswith("+sentinel://"):
        return _parse_sentinel(url, tls=scheme == "rediss+sentinel://")
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - urllib checks the port when it is read
    except ValueError as exc:
        raise _error(f"bad port ({exc})", url) from None
    db = parts.path.strip("/")
    if scheme != "unix://" and db and not db.isdigit():
        raise _error(f"bad db number {unquote(db)!r} (the path must be /<db>)", url)
    return None


def _parse_sentinel(url: str, *, tls: bool) -> _SentinelTarget:
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    sentinels = [_sentinel_address(entry, url) for entry in hosts.split(",") if entry]
    if not sentinels:
        raise _error("no sentinel host:port", url)
    path = [unquote(segment) for segment in parts.path.strip("/").split("/")] if parts.path.strip("/") else []
    if not path or not path[0]:
        raise _error("no service name: expected .../<service_name>[/<db>] after the sentinel addresses", url)
    if len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise _error(f"bad path {parts.path!r}: expected /<service_name>[/<db>] with a whole-number db", url)
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"sentinel_password"})
    if unknown:
        raise _error(f"unknown query parameter {unknown[0]!r} (sentinel URLs take only sentinel_password)", url)
    username, _, password = userinfo.partition(":")
    master: dict[str, Any] = {"db": int(path[1]) if len(path) == 2 else 0}
    master |= {"username": unquote(username)} if username else {}
    master |= {"password": unquote(password)} if password else {}
    return _SentinelTarget(sentinels, path[0], tls, master, query.get("sentinel_password", [None])[0])


def _sentinel_address(entry: str, url: str) -> tuple[str, int]:
    address = urlsplit(f"//{entry}")
    try:
        port = address.port
    except ValueError as exc:
        raise _error(f"bad port in sentinel address {entry!r} ({exc})", url) from None
    if not address.hostname:
        raise _error(f"no host in sentinel address {entry!r}", url)
    return address.hostname, port or DEFAULT_SENTINEL_PORT
