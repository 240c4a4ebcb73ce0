"""A client that cannot reach the cluster gets an error naming the server, its URL (password hidden) and the setting
to fix, whatever the mode, instead of a bare driver exception."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

import flyte_celery as flyte
from flyte_celery.errors import RuntimeSystemError
from tests.behaviour.programs import outputs


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on (bound, never listening, so no one else takes it meanwhile)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def cluster_settings(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("FLYTE_CELERY_REDIS_URL", "FLYTE_CELERY_BROKER_URL", "FLYTE_CELERY_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLYTE_CELERY_SECURITY_SIGNING_KEY", "connection-errors-test-key")
    return monkeypatch


@pytest.mark.parametrize("mode", ["remote", "hybrid"])
def test_unreachable_redis_names_the_url_and_the_setting(
    cluster_settings: pytest.MonkeyPatch, closed_port: int, mode: str
) -> None:
    cluster_settings.setenv("FLYTE_CELERY_BROKER_URL", f"redis://:hunter2@127.0.0.1:{closed_port}/0")
    flyte.init_from_config()
    try:
        with pytest.raises(RuntimeSystemError) as failure:
            flyte.with_runcontext(mode=mode).run(outputs.unserializable)
    finally:
        flyte.init()
    message = str(failure.value)
    assert failure.value.code == "ConnectionError"
    assert f"redis://:***@127.0.0.1:{closed_port}/0" in message
    assert "hunter2" not in message
    assert "FLYTE_CELERY_BROKER_URL" in message


def test_unreachable_amqp_broker_names_the_broker_setting(
    cluster_settings: pytest.MonkeyPatch, closed_port: int, redis_url: str
) -> None:
    cluster_settings.setenv("FLYTE_CELERY_BROKER_URL", f"amqp://guest:guest@127.0.0.1:{closed_port}//")
    cluster_settings.setenv("FLYTE_CELERY_REDIS_URL", redis_url)
    flyte.init_from_config()
    try:
        with pytest.raises(RuntimeSystemError) as failure:
            flyte.with_runcontext(mode="remote").run(outputs.unserializable)
    finally:
        flyte.init()
    assert failure.value.code == "ConnectionError"
    assert "the broker" in str(failure.value)
    assert "FLYTE_CELERY_BROKER_URL" in str(failure.value)
