"""Refused messages, kept for a person to look at: one bounded Redis list with a TTL (`dead-letters`), newest first.

Each entry is JSON: when, why, the queue, and the message's headers and body cut to `MAX_DEAD_LETTER_BYTES`. The
list is the only thing a refused message writes: never a record under a run or action name it claims.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from flyte_celery._celery.keys import MAX_DEAD_LETTER_BYTES, Keys
from flyte_celery._config_model import Settings
from flyte_celery._logging import system_logger
from flyte_celery._redis_connect import sync_client
from flyte_celery._throttle import LogThrottle


class DeadLetters:
    """Writes refused messages to the dead-letter list (from the worker's consumer thread, synchronously)."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.redis_url_resolved()
        self.keys = Keys(settings.redis.key_prefix, settings.retention)
        self._client: Any = None
        self._failures = LogThrottle()

    def add(self, message: Any, reason: str) -> None:
        """Keep a copy of `message` (a kombu Message) with `reason`; a Redis failure is logged, never raised."""
        if self.keys.dead_letters_max == 0:
            return
        entry = json.dumps(
            {
                "at": time.time(),
                "reason": reason[:1024],
                "queue": _routing_key(message),
                "headers": repr(getattr(message, "headers", None))[: MAX_DEAD_LETTER_BYTES // 2],
                "body": _body_text(getattr(message, "body", None))[: MAX_DEAD_LETTER_BYTES // 2],
            }
        )
        try:
            pipe = self.client().pipeline(transaction=False)
            pipe.lpush(self.keys.dead_letters, entry)
            pipe.ltrim(self.keys.dead_letters, 0, self.keys.dead_letters_max - 1)
            pipe.expire(self.keys.dead_letters, self.keys.dead_letters_ttl_s)
            pipe.execute()
        except Exception as exc:
            held = self._failures.ready()
            if held is not None:
                system_logger.warning("could not keep a refused message in the dead letters: %s", exc)

    def client(self) -> Any:
        """The consumer thread's Redis client, created on first use."""
        if self._client is None:
            self._client = sync_client(self.url)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def read_dead_letters(client: Any, keys: Keys, count: int = 100) -> list[dict[str, Any]]:
    """The newest `count` dead letters, decoded."""
    return [json.loads(raw) for raw in client.lrange(keys.dead_letters, 0, count - 1)]


def _routing_key(message: Any) -> str | None:
    info = getattr(message, "delivery_info", None)
    key = info.get("routing_key") if isinstance(info, dict) else None
    return key if isinstance(key, str) else None


def _body_text(body: object) -> str:
    if isinstance(body, str):
        return body
    if isinstance(body, (bytes, bytearray)):
        try:
            return bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(bytes(body)).decode("ascii")
    return repr(body)
