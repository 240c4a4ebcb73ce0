"""Redis clients made from URLs (`_redis_connect`), against real redis-server and sentinel processes.

Each test starts the servers it needs on free ports (see `tests._redis_servers`) and stops them afterwards, so it can
kill, restart or fail them over without touching the suite's shared Redis.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from flyte_celery._redis_connect import (
    HEALTH_CHECK_INTERVAL_S,
    MIN_RIDE_OUT_S,
    REDIS_URL_SCHEMES,
    SOCKET_TIMEOUT_S,
    async_client,
    sync_client,
)
from flyte_celery._urls import redact
from flyte_celery.errors import ConfigError
from tests._redis_servers import HOST, SERVICE_NAME, RedisProcess, poll, redis_server, sentinel_for

DEADLINE_S = 30.0
OUTAGE_S = 1.0  # how long Redis stays down while a command is pending; well inside MIN_RIDE_OUT_S
BLOCK_S = 0.2  # one BLPOP's wait in the pool test
FAILOVER_AFTER_MS = 500  # how long the sentinel waits before failing a dead master over
PASSWORD = "s3cret-pw"
SENTINEL_PASSWORD = "sentinel-pw"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A private redis-server that also listens on ``tmp_path / "redis.sock"``."""
    with redis_server(tmp_path / "redis", "--unixsocket", str(tmp_path / "redis.sock")) as started:
        yield started


@pytest.fixture
def sentinel(tmp_path: Path, server: RedisProcess) -> Iterator[RedisProcess]:
    """A sentinel monitoring `server` as ``SERVICE_NAME``."""
    with sentinel_for(tmp_path / "sentinel", server) as started:
        yield started


def sentinel_url(sentinel: RedisProcess, suffix: str = "") -> str:
    return f"redis+sentinel://{HOST}:{sentinel.port}/{SERVICE_NAME}{suffix}"


def key() -> str:
    return f"test-{uuid.uuid4().hex}"


async def use_async(url: str, body: Callable[[aioredis.Redis], Awaitable[Any]], **kwargs: Any) -> Any:
    """Run `body` with an async client for `url`, closing the client afterwards."""
    client = async_client(url, **kwargs)
    try:
        return await body(client)
    finally:
        await client.aclose()


def run_async(url: str, body: Callable[[aioredis.Redis], Awaitable[Any]], **kwargs: Any) -> Any:
    return asyncio.run(use_async(url, body, **kwargs))


def write_and_read_back(url: str, direct: redis.Redis) -> None:
    """Sync and async clients for `url` write keys `direct` sees, and read keys `direct` wrote."""
    with sync_client(url) as client:
        written = key()
        assert client.set(written, "from sync") is True
        assert direct.get(written) == b"from sync"
        direct.set(read := key(), "for sync")
        assert client.get(read) == b"for sync"

    async def body(client: aioredis.Redis) -> None:
        written = key()
        assert await client.set(written, "from async") is True
        assert direct.get(written) == b"from async"
        direct.set(read := key(), "for async")
        assert await client.get(read) == b"for async"

    run_async(url, body)


def other_clients(direct: redis.Redis) -> list[dict[str, Any]]:
    """Connections to `direct`'s server other than `direct`'s own and a sentinel's."""
    own = direct.client_id()
    return [c for c in direct.client_list() if int(c["id"]) != own and not c["name"].startswith("sentinel-")]


# --- plain URLs ---------------------------------------------------------------------------------------------------


def test_redis_url_with_a_db_number_uses_that_db(server: RedisProcess) -> None:
    with server.client(db=3) as db3, server.client(db=0) as db0:
        write_and_read_back(f"{server.url}/3", db3)
        assert db0.dbsize() == 0


def test_unix_socket_url_uses_its_db(server: RedisProcess, tmp_path: Path) -> None:
    with server.client(db=4) as db4, server.client(db=0) as db0:
        write_and_read_back(f"unix://{tmp_path / 'redis.sock'}?db=4", db4)
        assert db0.dbsize() == 0


def test_next_command_after_a_restart_succeeds(server: RedisProcess) -> None:
    before, after = key(), key()
    with sync_client(server.url) as sync:

        async def body(client: aioredis.Redis) -> None:
            # Both clients hold a pooled connection to the server that is about to die.
            assert await client.set(before, "x") is True
            assert sync.set(before, "x") is True
            server.kill()
            server.start()
            # The restarted server has no persistence: `before` is gone, so these answers come from the new process.
            assert await client.get(before) is None
            assert sync.get(before) is None
            assert await client.set(after, "async") is True
            assert sync.get(after) == b"async"

        run_async(server.url, body)


def test_sync_command_rides_out_a_short_outage(server: RedisProcess) -> None:
    written = key()
    outcome: list[object] = []
    with sync_client(server.url) as client:
        assert client.ping() is True
        server.kill()

        def command() -> None:
            try:
                outcome.append(client.set(written, "v"))
            except Exception as exc:
                outcome.append(exc)

        thread = threading.Thread(target=command)
        thread.start()
        thread.join(OUTAGE_S)  # Redis stays down this long
        assert thread.is_alive(), f"the command ended while Redis was down: {outcome}"
        server.start()
        thread.join(DEADLINE_S)
        assert outcome == [True]
    with server.client() as direct:
        assert direct.get(written) == b"v"


def test_async_command_rides_out_a_short_outage(server: RedisProcess) -> None:
    written = key()

    async def body(client: aioredis.Redis) -> None:
        assert await client.ping() is True
        server.kill()
        command = asyncio.ensure_future(client.set(written, "v"))
        done, _ = await asyncio.wait({command}, timeout=OUTAGE_S)  # Redis stays down this long
        assert not done, f"the command ended while Redis was down: {command.exception()!r}"
        await asyncio.to_thread(server.start)
        assert await asyncio.wait_for(command, DEADLINE_S) is True

    assert OUTAGE_S < MIN_RIDE_OUT_S
    run_async(server.url, body)
    with server.client() as direct:
        assert direct.get(written) == b"v"


def test_a_missing_password_fails_at_once(tmp_path: Path) -> None:
    # A refused password is not retried: without a password, the first command fails rather than backing off.
    with redis_server(tmp_path, "--requirepass", PASSWORD) as server:
        with sync_client(server.url) as client:
            started = time.monotonic()
            with pytest.raises(redis.AuthenticationError):
                client.ping()
            assert time.monotonic() - started < MIN_RIDE_OUT_S / 2
        with sync_client(f"redis://:{PASSWORD}@{HOST}:{server.port}/0") as client:
            assert client.ping() is True


# --- sentinel URLs ------------------------------------------------------------------------------------------------


def test_sentinel_url_reaches_the_masters_db(server: RedisProcess, sentinel: RedisProcess) -> None:
    with server.client(db=2) as db2, server.client(db=0) as db0:
        write_and_read_back(sentinel_url(sentinel, "/2"), db2)
        assert db0.dbsize() == 0


def test_sentinel_url_with_master_and_sentinel_passwords(tmp_path: Path) -> None:
    with (
        redis_server(tmp_path / "redis", "--requirepass", PASSWORD) as master,
        sentinel_for(tmp_path / "sentinel", master, master_password=PASSWORD, password=SENTINEL_PASSWORD) as guard,
        master.client(password=PASSWORD) as direct,
    ):
        # Both servers refuse clients without their password, so this proves each password reached its server.
        url = f"redis+sentinel://:{PASSWORD}@{HOST}:{guard.port}/{SERVICE_NAME}?sentinel_password={SENTINEL_PASSWORD}"
        write_and_read_back(url, direct)


def test_closing_a_sentinel_client_closes_every_connection(server: RedisProcess, sentinel: RedisProcess) -> None:
    url = sentinel_url(sentinel)
    with server.client() as on_master, sentinel.client() as on_sentinel:
        client = sync_client(url)
        assert client.ping() is True
        assert other_clients(on_master)
        assert other_clients(on_sentinel)
        client.close()
        poll(lambda: other_clients(on_master) == other_clients(on_sentinel) == [], "the connections to close")

        async def body(client: aioredis.Redis) -> None:
            assert await client.ping() is True
            assert other_clients(on_master)
            assert other_clients(on_sentinel)

        run_async(url, body)
        poll(lambda: other_clients(on_master) == other_clients(on_sentinel) == [], "the connections to close")


def test_commands_sent_while_the_master_is_down_reach_the_new_master(tmp_path: Path, server: RedisProcess) -> None:
    with (
        redis_server(tmp_path / "replica", "--replicaof", HOST, str(server.port)) as replica,
        sentinel_for(tmp_path / "sentinel", server, down_after_ms=FAILOVER_AFTER_MS) as sentinel,
        sentinel.client() as guard,
        replica.client() as new_master,
    ):
        poll(lambda: new_master.info("replication")["master_link_status"] == "up", "the replica to sync")
        poll(lambda: [r["port"] for r in guard.sentinel_slaves(SERVICE_NAME)] == [replica.port], "the replica seen")
        url = sentinel_url(sentinel)
        from_sync, from_async = key(), key()
        with sync_client(url) as sync:

            async def body(client: aioredis.Redis) -> None:
                # Both clients hold a pooled connection to the master that is about to die.
                assert await client.ping() is True
                assert sync.ping() is True
                server.kill()
                # Sent while the master is down: they wait out the failover, then must not retry at the old address.
                sync_write = asyncio.ensure_future(asyncio.to_thread(sync.set, from_sync, "sync"))
                assert await asyncio.wait_for(client.set(from_async, "async"), DEADLINE_S) is True
                assert await asyncio.wait_for(sync_write, DEADLINE_S) is True

            run_async(url, body)
        assert guard.sentinel_get_master_addr_by_name(SERVICE_NAME)[1] == replica.port
        assert new_master.mget(from_sync, from_async) == [b"sync", b"async"]


# --- async pool and pub/sub ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["redis", "sentinel"])
def test_bounded_async_client_queues_commands_and_closes_its_pool(
    server: RedisProcess, tmp_path: Path, kind: str
) -> None:
    with sentinel_for(tmp_path / "sentinel", server) if kind == "sentinel" else nullcontext() as guard:
        url = server.url if guard is None else sentinel_url(guard)
        empty = key()

        async def body(client: aioredis.Redis) -> float:
            started = time.monotonic()
            results = await asyncio.gather(*(client.blpop([empty], timeout=BLOCK_S) for _ in range(10)))
            assert results == [None] * 10
            with server.client() as direct:
                assert len(other_clients(direct)) == 2
            return time.monotonic() - started

        elapsed = run_async(url, body, max_connections=2)
        # Two connections serve ten waits in five rounds; ten connections would take one.
        assert elapsed >= 5 * BLOCK_S * 0.9
        with server.client() as direct:
            poll(lambda: other_clients(direct) == [], "the pool's connections to close")


def test_max_connections_below_one_is_refused(server: RedisProcess) -> None:
    with pytest.raises(ValueError, match="max_connections"):
        async_client(server.url, max_connections=0)


@pytest.mark.parametrize("kind", ["redis", "sentinel"])
def test_pubsub_polls_return_none_until_a_message_arrives(server: RedisProcess, tmp_path: Path, kind: str) -> None:
    # As the runtime reads its reply channel: repeated short get_message calls on a bounded async client, for longer
    # than the health-check interval (a PING on the subscribed connection must not surface as a message or an error).
    with sentinel_for(tmp_path / "sentinel", server) if kind == "sentinel" else nullcontext() as guard:
        url = server.url if guard is None else sentinel_url(guard)
        channel = key()

        async def body(client: aioredis.Redis) -> None:
            async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(channel)
                quiet_until = time.monotonic() + HEALTH_CHECK_INTERVAL_S + 1
                while time.monotonic() < quiet_until:
                    assert await pubsub.get_message(timeout=0.5) is None
                assert await client.publish(channel, "hello") == 1
                deadline = time.monotonic() + DEADLINE_S
                message = None
                while message is None and time.monotonic() < deadline:
                    message = await pubsub.get_message(timeout=0.5)
                assert message is not None
                assert message["data"] == b"hello"

        run_async(url, body, max_connections=4)


def test_pubsub_wait_may_outlast_the_socket_read_timeout(server: RedisProcess) -> None:
    channel = key()

    async def body(client: aioredis.Redis) -> None:
        async with client.pubsub() as pubsub:
            await pubsub.subscribe(channel)
            confirmation = await pubsub.get_message(timeout=DEADLINE_S)
            assert confirmation is not None
            assert confirmation["type"] == "subscribe"
            started = time.monotonic()
            assert await pubsub.get_message(timeout=SOCKET_TIMEOUT_S + 0.5) is None
            assert time.monotonic() - started >= SOCKET_TIMEOUT_S

    run_async(server.url, body)


# --- bad URLs -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://:hunter2@h:6379/0", "unknown scheme 'http://'"),
        ("h:6379", "no scheme"),
        ("redis://:hunter2@h:notaport/0", "bad port"),
        ("redis://:hunter2@h:99999/0", "bad port"),
        ("redis://:hunter2@h:6379/zero", "bad db number 'zero'"),
        ("redis://:hunter2@h:6379/0?socket_timeout=soon", "socket_timeout"),
        ("redis+sentinel://:hunter2@h:26379", "no service name"),
        ("redis+sentinel://:hunter2@h:26379/", "no service name"),
        ("redis+sentinel://:hunter2@/mymaster", "no sentinel host"),
        ("redis+sentinel://:hunter2@h:26379,h2:bad/mymaster", "bad port in sentinel address 'h2:bad'"),
        ("redis+sentinel://:hunter2@h:26379/mymaster/two", "bad path"),
        ("redis+sentinel://:hunter2@h:26379/mymaster/2/3", "bad path"),
        ("redis+sentinel://:hunter2@h/mymaster?sentinel_pasword=hunter2", "unknown query parameter 'sentinel_pasword'"),
        ("sentinel://:hunter2@h:26379;sentinel://h2:26379?master_name=mymaster", "redis+sentinel://"),
    ],
)
@pytest.mark.parametrize("make", [sync_client, async_client])
def test_bad_url_raises_config_error_naming_the_problem(url: str, problem: str, make: Callable[[str], Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        make(url)
    message = str(caught.value)
    assert caught.value.key == "redis.url"
    assert problem in message
    assert "hunter2" not in message
    assert redact(url) in message


@pytest.mark.parametrize("scheme", REDIS_URL_SCHEMES)
def test_every_accepted_scheme_makes_clients(scheme: str) -> None:
    # The config validation accepts these schemes, so each must make clients (which connect lazily: no server here).
    url = scheme + ("/tmp/redis.sock?db=1" if scheme == "unix://" else "h:1/m/1" if "sentinel" in scheme else "h:1/1")
    tls = scheme.startswith("rediss")

    def settings(pool: Any) -> tuple[int, bool]:
        return pool.connection_kwargs["db"], issubclass(
            pool.connection_class, (redis.SSLConnection, aioredis.SSLConnection)
        )

    with sync_client(url) as client:
        assert settings(client.connection_pool) == (1, tls)
    assert run_async(url, lambda client: asyncio.sleep(0, settings(client.connection_pool))) == (1, tls)


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("redis://user:pw@h:6379/0", "redis://user:***@h:6379/0"),
        ("redis://:p@ss:w@h:6379", "redis://:***@h:6379"),
        ("redis://user@h:6379/0", "redis://user@h:6379/0"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("unix:///tmp/redis.sock?db=1&password=pw", "unix:///tmp/redis.sock?db=1&password=***"),
        (
            "redis://h/0?db=1&ssl_password=x&pasword=y&socket_timeout=5",
            "redis://h/0?db=1&ssl_password=***&pasword=***&socket_timeout=***",
        ),
        (
            "redis+sentinel://:pw@h1:26379,h2:26379/m/2?sentinel_password=spw",
            "redis+sentinel://:***@h1:26379,h2:26379/m/2?sentinel_password=***",
        ),
    ],
)
def test_redact_hides_passwords(url: str, redacted: str) -> None:
    assert redact(url) == redacted
