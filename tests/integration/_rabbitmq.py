"""RabbitMQ for the broker-agnostic tests: find the local server, start it when it is down, or fail saying why."""

from __future__ import annotations

import os
import shutil
import subprocess
from urllib.parse import urlparse

from tests._services import port_open, wait_until

RABBITMQ_URL = os.environ.get("FLYTE_CELERY_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
RABBITMQ_START_DEADLINE_S = 60.0


def ensure_rabbitmq(url: str = RABBITMQ_URL) -> str:
    """Make sure the RabbitMQ server named by `url` answers, starting the Debian package's server if needed."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 5672
    if port_open(host, port):
        return url
    binary = shutil.which("rabbitmq-server")
    if host not in ("127.0.0.1", "localhost") or binary is None:
        raise RuntimeError(
            f"RabbitMQ is not reachable at {host}:{port} and cannot be started here "
            f"(rabbitmq-server {'found' if binary else 'not installed: apt-get install rabbitmq-server'}). "
            "Set FLYTE_CELERY_TEST_RABBITMQ_URL to a running server."
        )
    subprocess.run([binary, "-detached"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: port_open(host, port), RABBITMQ_START_DEADLINE_S, f"rabbitmq-server on {host}:{port}")
    return url


def delete_queue(url: str, queue: str) -> None:
    """Remove a test queue and the exchange Celery declared for it (RabbitMQ keeps both after the workers stop)."""
    from kombu.connection import Connection

    with Connection(url) as connection:  # type: ignore[no-untyped-call]
        channel = connection.default_channel
        channel.queue_delete(queue)
        channel.exchange_delete(queue)
