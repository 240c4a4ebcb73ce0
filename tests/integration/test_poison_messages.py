"""No message can kill a worker, and a message that is not authentic changes nothing: it is refused before Celery
looks at it, kept in the bounded dead-letter list, and creates no record under the names it claims.

Messages are sent with kombu straight to the worker's queue, as a hostile client with write access to the broker
would send them. The killers below each ended a worker (and crash-looped the next) before the message guard.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
import redis
from celery import Celery

import flyte_celery as flyte
from flyte_celery._celery.app import make_app
from flyte_celery._celery.envelope import ActionMessage, Envelope, RunContextMessage
from flyte_celery._celery.keys import Keys
from flyte_celery._celery.message import MAC_HEADER, MESSAGE_PURPOSE
from flyte_celery._config_loader import load_settings
from flyte_celery._keyrings import fleet_keyring
from flyte_celery._signing import KeyRing
from tests._services import wait_until
from tests._workers import Worker, WorkerFactory
from tests.integration._raw_messages import (
    RawMessage,
    RawQueue,
    celery_message,
    keys_naming,
    sealed,
    wait_dead_letters,
)
from tests.integration.programs import remote_tasks

RUN_DEADLINE_S = 30.0


@dataclass
class Cluster:
    worker: Worker
    factory: WorkerFactory
    app: Celery
    keyring: KeyRing
    keys: Keys
    client: redis.Redis
    raw: RawQueue
    bundle: str

    def envelope(self, run: str, action: str = "a0") -> Envelope:
        queue = self.factory.queue
        return Envelope(
            run=RunContextMessage(name=run, default_queue=queue),
            action=ActionMessage(name=action, task=remote_tasks.add_one.name, bundle=self.bundle, queue=queue),
        )

    def valid(self, run: str, x: int = 1) -> RawMessage:
        return sealed(self.app, self.keyring, self.envelope(run), {"x": x})


@pytest.fixture
def cluster(worker_factory: WorkerFactory, redis_client: Any) -> Iterator[Cluster]:
    worker = worker_factory.start(concurrency=1)
    settings = load_settings()
    # A real run first: its bundle digest makes the authentic-looking messages below.
    run = flyte.with_runcontext(mode="remote").run(remote_tasks.add_one, 1)
    assert run.outputs(timeout=RUN_DEADLINE_S).o0 == 2
    keys = Keys(settings.redis.key_prefix, settings.retention)
    bundle = redis_client.hget(keys.run(run.name), "bundle").decode()
    raw = RawQueue(worker_factory.broker_url, worker_factory.queue)
    app = make_app(settings)
    yield Cluster(worker, worker_factory, app, fleet_keyring(settings), keys, redis_client, raw, bundle)
    raw.close()
    app.close()


def _assert_still_serving(cluster: Cluster) -> None:
    run = flyte.with_runcontext(mode="remote").run(remote_tasks.add_one, 41)
    assert run.outputs(timeout=RUN_DEADLINE_S).o0 == 42, cluster.worker.log()[-3000:]
    assert cluster.worker.process.poll() is None, "the worker process exited"
    assert "Unrecoverable error" not in cluster.worker.log()


def _body(text: str) -> Callable[[RawMessage], RawMessage]:
    return lambda m: replace(m, body=text.encode())


def _header(name: str, value: Any) -> Callable[[RawMessage], RawMessage]:
    return lambda m: replace(m, headers={**m.headers, name: value})


# Each of these killed a Celery 5.7 worker in its consumer, before any task code ran.
KILLERS: dict[str, Callable[[RawMessage], RawMessage]] = {
    "empty binary body": lambda m: replace(m, body=b"", content_type="application/data", content_encoding="binary"),
    "body []": _body("[]"),
    "body {}": _body("{}"),
    "body [1]": _body("[1]"),
    "body null": _body("null"),
    'body "x"': _body('"x"'),
    "body [1,2,3,4]": _body("[1, 2, 3, 4]"),
    "body 7": _body("7"),
    "id as a list": _header("id", ["a", "b"]),
    "timelimit 'x'": _header("timelimit", "x"),
    "stamped_headers 5": _header("stamped_headers", 5),
    "task as a dict": _header("task", {"a": 1}),
    "eta ''": _header("eta", ""),
    "eta -0.0": _header("eta", -0.0),
    "expires ''": _header("expires", ""),
    "expires -0.0": _header("expires", -0.0),
}


def test_every_known_killer_is_dead_lettered_and_the_worker_keeps_serving(cluster: Cluster) -> None:
    runs = {name: f"killer-{secrets.token_hex(4)}" for name in KILLERS}
    for name, mutate in KILLERS.items():
        cluster.raw.send(mutate(cluster.valid(runs[name])))  # authentically signed, with one Celery field broken
    letters = wait_dead_letters(cluster.client, cluster.keys, len(KILLERS))
    assert len(letters) == len(KILLERS)
    assert all(letter["reason"] and letter["queue"] == cluster.factory.queue for letter in letters)
    assert cluster.client.llen(cluster.factory.queue) == 0, "a refused message went back to the queue"
    for run in runs.values():
        assert keys_naming(cluster.client, run) == [], f"a refused message left records for {run}"
    assert "refused message" in cluster.worker.log()
    _assert_still_serving(cluster)


def test_unauthentic_messages_naming_a_run_create_nothing_and_cannot_fail_it(cluster: Cluster) -> None:
    victim = f"victim-{secrets.token_hex(4)}"
    valid = cluster.valid(victim, x=1000)
    forged_mac = cluster.keyring.mac(MESSAGE_PURPOSE, valid.headers["flyte_celery"], b"garbage")[0] + ":" + "0" * 64
    other_run = cluster.valid(f"other-{secrets.token_hex(4)}", x=5)
    rebound_header = other_run.headers["flyte_celery"].replace(other_run.headers["id"].rsplit("-", 1)[0], victim)
    attempts = [
        valid.with_args(["Z2FyYmFnZQ=="]),  # garbage inputs under the victim's valid MAC
        replace(valid, headers={**valid.headers, MAC_HEADER: forged_mac}),  # a MAC made up by the sender
        replace(valid, headers={k: v for k, v in valid.headers.items() if k != MAC_HEADER}),  # unsigned
        # another run's authentic inputs and MAC, with the envelope edited to name the victim
        replace(other_run, headers={**valid.headers, "flyte_celery": rebound_header,
                                    MAC_HEADER: other_run.headers[MAC_HEADER]}),
        # an envelope of an unknown schema version, unsigned
        replace(valid, headers={**valid.headers, "flyte_celery": json.dumps({"v": 99, "run": {"name": victim}})}),
    ]  # fmt: skip
    for message in attempts:
        cluster.raw.send(message)
    letters = wait_dead_letters(cluster.client, cluster.keys, len(attempts))
    assert all("authentication" in letter["reason"] or "missing" in letter["reason"] for letter in letters), letters
    assert keys_naming(cluster.client, victim) == []
    # The victim's run, started now, is untouched by all of it.
    run = flyte.with_runcontext(mode="remote", name=victim).run(remote_tasks.add_one, 7)
    assert run.outputs(timeout=RUN_DEADLINE_S).o0 == 8
    _assert_still_serving(cluster)


def test_an_authentic_message_of_an_unknown_schema_version_fails_its_action_saying_why(cluster: Cluster) -> None:
    run = flyte.with_runcontext(mode="remote").run(remote_tasks.add_one, 1)
    run.wait(timeout=RUN_DEADLINE_S)
    # A second action of that (real) run, sent by a newer client: authentic, so the names it gives are trusted.
    envelope = cluster.envelope(run.name, "a-newer")
    text = json.dumps({"v": 99, "run": {"name": run.name}, "action": {"name": "a-newer"}})
    kid, digest = cluster.keyring.mac(MESSAGE_PURPOSE, text, b"inputs")
    message = celery_message(
        cluster.app, {"flyte_celery": text, MAC_HEADER: f"{kid}:{digest.hex()}"}, ("aW5wdXRz",), envelope
    )
    cluster.raw.send(message)
    wait_until(
        lambda: cluster.client.exists(cluster.keys.result(run.name, "a-newer")), 20.0, "the failure to be recorded"
    )
    assert cluster.client.llen(cluster.keys.dead_letters) == 0
    assert "upgrade the worker" in cluster.worker.log()
    _assert_still_serving(cluster)


def test_a_worker_with_the_wrong_key_leaves_messages_to_workers_with_the_right_one(
    worker_factory: WorkerFactory, redis_client: Any
) -> None:
    settings = load_settings()
    keys = Keys(settings.redis.key_prefix, settings.retention)
    right_id = fleet_keyring(settings).current_id
    run = flyte.with_runcontext(mode="remote").run(remote_tasks.add_one, 2)  # queued: no worker yet
    wrong = worker_factory.start(1, FLYTE_CELERY_SECURITY_SIGNING_KEY="not-the-fleet-key")
    assert f"signed with key id(s) {right_id}" in wrong.log(), "no warning at start about the fleet's key"
    wait_until(lambda: wrong.log().count("cannot verify message") >= 1, 20.0, "the wrong-key worker to refuse")
    assert f"key id {right_id}" in wrong.log()
    assert not redis_client.exists(keys.result(run.name, "a0")), "a worker with the wrong key recorded an outcome"
    worker_factory.start(1)
    assert run.outputs(timeout=RUN_DEADLINE_S).o0 == 3
    assert wrong.process.poll() is None


def test_a_refused_message_is_not_retried_by_another_worker(cluster: Cluster) -> None:
    cluster.raw.send(KILLERS["body []"](cluster.valid("once")))
    wait_dead_letters(cluster.client, cluster.keys, 1)
    second = cluster.factory.start(1)
    _assert_still_serving(cluster)
    assert "refused message" not in second.log()
    assert cluster.client.llen(cluster.keys.dead_letters) == 1


def test_a_message_for_another_task_is_refused(cluster: Cluster) -> None:
    cluster.raw.send(_header("task", "celery.ping")(cluster.valid("other-task")))
    letter = wait_dead_letters(cluster.client, cluster.keys, 1)[0]
    assert "'task'" in letter["reason"]
    assert keys_naming(cluster.client, "other-task") == []
