"""Task events on the wire: every action of a burst is announced (sent, received, started, succeeded), and the
events travel batched, a list of them per event message, the way Celery's worker batches its own, rather than one
broker publish per event. Counted on the event exchange itself (a Redis pattern subscription), not timed."""

from __future__ import annotations

import base64
import json
from collections import Counter, defaultdict
from typing import Any

import redis

import flyte_celery as flyte
from tests._services import wait_until
from tests._workers import WorkerFactory
from tests.integration.programs import run_views

LEAVES = 300
EVENT_DEADLINE_S = 60.0
ANNOUNCED = ("task-sent", "task-received", "task-started", "task-succeeded")


def _events_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The events in one kombu message on the Redis event exchange (a list body, or one event)."""
    envelope = json.loads(message["data"])
    body = envelope["body"]
    if envelope.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    decoded = json.loads(body)
    return decoded if isinstance(decoded, list) else [decoded]


def test_a_burst_of_actions_is_announced_in_few_event_messages(
    redis_client: Any, redis_url: str, worker_factory: WorkerFactory
) -> None:
    worker_factory.start(concurrency=2)
    listener = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
    listener.psubscribe("*celeryev*")
    seen: defaultdict[str, set[str]] = defaultdict(set)  # event type -> task ids of this run
    messages_with: Counter[str] = Counter()  # event type -> event messages that carried at least one

    run = flyte.with_runcontext(mode="remote").run(run_views.all_good, LEAVES)
    assert run.outputs(timeout=EVENT_DEADLINE_S).o0 == sum(2 * run_views.FAIL_EVERY * i for i in range(LEAVES))

    def every_action_announced() -> bool:
        while (message := listener.get_message(timeout=0.1)) is not None:
            kinds = set()
            for event in _events_of(message):
                if str(event.get("uuid", "")).startswith(f"{run.name}-"):
                    seen[event["type"]].add(event["uuid"])
                    kinds.add(event["type"])
            messages_with.update(kinds)
        return all(len(seen[kind]) == LEAVES + 1 for kind in ANNOUNCED)

    try:
        wait_until(every_action_announced, EVENT_DEADLINE_S, "every action's sent, received, started, succeeded events")
    finally:
        listener.close()
    # One publish per event would be LEAVES + 1 messages of each type; batched, a message carries many.
    for kind in ("task-sent", "task-received"):
        assert messages_with[kind] <= (LEAVES + 1) // 3, (kind, messages_with)
