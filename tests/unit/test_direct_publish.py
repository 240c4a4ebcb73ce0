"""When the attach script may push an action's message itself: only when the broker is the Redis database of our
records and nothing would make kombu's bytes or list differ from ours (see `direct_publish`)."""

from __future__ import annotations

from typing import Any

import pytest

from flyte_celery._celery.app import make_app
from flyte_celery._celery.direct_publish import DirectMessages, direct_messages
from flyte_celery._config_model import Settings
from flyte_celery._signing import KeyRing

RING = KeyRing(b"unit-direct-publish-key")
RECORDS = "redis://127.0.0.1:6379/3"


def direct(broker: str, redis: str = RECORDS, **celery: Any) -> DirectMessages | None:
    settings = Settings.model_validate({"broker": {"url": broker}, "redis": {"url": redis}, "celery": celery})
    return direct_messages(make_app(settings), settings.redis_url_resolved(), RING)


@pytest.mark.parametrize(
    "broker",
    [RECORDS, "redis://127.0.0.1:6379/3/", "redis://127.0.0.1/3"],
    ids=["same URL", "trailing slash", "default port"],
)
def test_a_broker_on_the_records_database_gets_direct_messages(broker: str) -> None:
    assert isinstance(direct(broker), DirectMessages)


def test_db_zero_is_the_default_database() -> None:
    assert isinstance(direct("redis://127.0.0.1:6379", "redis://127.0.0.1:6379/0"), DirectMessages)


@pytest.mark.parametrize(
    "broker",
    [
        "redis://127.0.0.1:6379/4",  # another database
        "redis://127.0.0.2:6379/3",  # another host
        "redis://127.0.0.1:6380/3",  # another port
        "redis://:secret@127.0.0.1:6379/3",  # other credentials
        "rediss://127.0.0.1:6379/3",  # TLS for one, not the other
        "amqp://guest:guest@127.0.0.1:5672//",
    ],
)
def test_any_other_broker_publishes_through_kombu(broker: str) -> None:
    assert direct(broker) is None


@pytest.mark.parametrize(
    "celery",
    [
        {"task_compression": "gzip"},
        {"task_default_priority": 5},
        {"task_queue_max_priority": 10},
        {"task_protocol": 1},
        {"task_serializer": "pickle"},
        {"broker_transport_options": {"global_keyprefix": "fleet1:"}},
    ],
    ids=lambda celery: next(iter(celery)),
)
def test_settings_that_change_kombus_bytes_or_list_keep_kombu(celery: dict[str, Any]) -> None:
    assert direct(RECORDS, **celery) is None


def test_harmless_transport_options_keep_the_direct_path() -> None:
    assert isinstance(direct(RECORDS, broker_transport_options={"visibility_timeout": 60}), DirectMessages)
