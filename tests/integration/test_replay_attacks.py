"""Replays and rebindings of authentic payloads, as an attacker who can write any Redis key and any queue message
would try them: each was accepted before payloads were bound to where they belong, and each is refused now.

Messages are captured off the Redis broker before any worker runs (the queue is a Redis list), then sent again
as they were or with their envelope edited. Tasks count their executions in Redis.
"""

from __future__ import annotations

import json
import pickle
import secrets
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import flyte_celery as flyte
from flyte_celery._celery.keys import Keys
from flyte_celery._config_loader import load_settings
from flyte_celery._signing import KeyRing
from flyte_celery.errors import UnsafePayloadError
from tests._services import wait_until
from tests._workers import WorkerFactory
from tests.integration._raw_messages import RawQueue, captured, keys_naming, marker_pickle, wait_dead_letters
from tests.integration.programs.trust_tasks import cached_counted, counted, executions

RUN_DEADLINE_S = 30.0
HEADER = "flyte_celery"


def _keys() -> Keys:
    settings = load_settings()
    return Keys(settings.redis.key_prefix, settings.retention)


def _edited(text: str, **changes: Any) -> str:
    """An envelope's text with run-level fields changed (the MAC that came with it is kept by the caller)."""
    envelope = json.loads(text)
    envelope["run"].update(changes)
    return json.dumps(envelope, separators=(",", ":"))


def test_signed_inputs_replayed_under_another_run_and_context_are_refused(
    worker_factory: WorkerFactory, redis_client: Any
) -> None:
    name = f"ctx-{secrets.token_hex(3)}"
    run = flyte.with_runcontext(mode="remote").run(counted, name, 2)  # no worker yet: the message waits
    genuine = captured(redis_client, worker_factory.queue)
    evil = f"evil-{secrets.token_hex(3)}"
    forgeries = [
        _edited(genuine.headers[HEADER], name=evil),
        _edited(genuine.headers[HEADER], env_vars={"LD_PRELOAD": "/tmp/x.so"}),
        _edited(genuine.headers[HEADER], labels={"team": "attacker"}, annotations={"a": "b"}),
        _edited(genuine.headers[HEADER], raw_data_path="s3://attacker/bucket"),
    ]
    raw = RawQueue(worker_factory.broker_url, worker_factory.queue)
    try:
        for text in forgeries:
            raw.send(type(genuine)({**genuine.headers, HEADER: text}, genuine.body, genuine.properties))
        raw.send(genuine)
    finally:
        raw.close()
    worker_factory.start(1)
    assert run.outputs(timeout=RUN_DEADLINE_S).o0 == 6
    letters = wait_dead_letters(redis_client, _keys(), len(forgeries))
    assert all("failed authentication" in letter["reason"] for letter in letters)
    assert executions(redis_client, name) == 1, "an edited replay of the message ran"
    assert keys_naming(redis_client, evil) == []


def test_another_runs_inputs_under_a_queued_victims_name_cannot_change_its_outcome(
    worker_factory: WorkerFactory, redis_client: Any
) -> None:
    victim = flyte.with_runcontext(mode="remote").run(counted, "victim", 1)
    victim_message = captured(redis_client, worker_factory.queue)
    attacker = flyte.with_runcontext(mode="remote").run(counted, "attacker", 100)
    attacker_message = captured(redis_client, worker_factory.queue)
    # The attacker's authentic inputs and MAC, under an envelope that names the victim's run and root action.
    rebound = type(attacker_message)(
        {**attacker_message.headers, HEADER: _edited(attacker_message.headers[HEADER], name=victim.name),
         "id": victim_message.headers["id"], "root_id": victim_message.headers["root_id"]},
        attacker_message.body, attacker_message.properties,
    )  # fmt: skip
    raw = RawQueue(worker_factory.broker_url, worker_factory.queue)
    try:
        for message in (rebound, victim_message, attacker_message):
            raw.send(message)
    finally:
        raw.close()
    worker_factory.start(1)
    assert victim.outputs(timeout=RUN_DEADLINE_S).o0 == 3
    assert attacker.outputs(timeout=RUN_DEADLINE_S).o0 == 300
    assert executions(redis_client, "attacker") == 1
    assert len(wait_dead_letters(redis_client, _keys(), 1)) == 1


def test_a_result_copied_to_another_run_is_refused(worker_factory: WorkerFactory, redis_client: Any) -> None:
    worker_factory.start(1)
    first = flyte.with_runcontext(mode="remote").run(counted, "first", 1)
    second = flyte.with_runcontext(mode="remote").run(counted, "second", 2)
    assert first.outputs(timeout=RUN_DEADLINE_S).o0 == 3
    assert second.outputs(timeout=RUN_DEADLINE_S).o0 == 6
    keys = _keys()
    redis_client.set(keys.result(second.name, "a0"), redis_client.get(keys.result(first.name, "a0")))
    with pytest.raises(UnsafePayloadError, match="failed authentication"):
        flyte.Run.get(second.name).outputs(timeout=RUN_DEADLINE_S)


def test_a_message_replayed_after_its_action_finished_changes_nothing(
    worker_factory: WorkerFactory, redis_client: Any
) -> None:
    name = f"replayed-{secrets.token_hex(3)}"
    run = flyte.with_runcontext(mode="remote").run(counted, name, 4)
    genuine = captured(redis_client, worker_factory.queue)
    raw = RawQueue(worker_factory.broker_url, worker_factory.queue)
    worker = worker_factory.start(1)
    try:
        raw.send(genuine)
        assert run.outputs(timeout=RUN_DEADLINE_S).o0 == 12
        for _ in range(3):
            raw.send(genuine)
        wait_until(lambda: worker.log().count("not started") >= 3, 20.0, "the three replays to be handled")
    finally:
        raw.close()
    assert executions(redis_client, name) == 1
    assert flyte.Run.get(run.name).outputs(timeout=RUN_DEADLINE_S).o0 == 12


def _cache_entries(redis_client: Any) -> list[bytes]:
    return [key for key in redis_client.scan_iter(match="flyte_celery:cache:{*") if b"cache-lock" not in key]


@pytest.mark.parametrize("mode", ["remote", "hybrid"])
def test_forged_and_rebound_cache_entries_are_never_used(
    mode: str, worker_factory: WorkerFactory, redis_client: Any, tmp_path: Path
) -> None:
    worker_factory.start(1)
    name = f"cached-{mode}-{secrets.token_hex(3)}"

    def run(x: int) -> int:
        return int(flyte.with_runcontext(mode=mode).run(cached_counted, name, x).outputs(timeout=RUN_DEADLINE_S).o0)

    assert run(6) == 18
    (six,) = _cache_entries(redis_client)
    assert run(5) == 15
    (five,) = set(_cache_entries(redis_client)) - {six}
    assert run(5) == 15
    assert executions(redis_client, name) == 2, "the second run with x=5 did not hit the cache"
    marker = tmp_path / "unpickled"
    forged = [
        marker_pickle(marker),  # a bare pickle
        KeyRing(b"another fleet's key").seal(b"\0" * 8 + marker_pickle(marker), "cache", five.decode()),
        redis_client.get(six),  # authentic, but sealed for the entry of x=6
    ]
    for count, entry in enumerate(forged, start=3):
        redis_client.set(five, entry)
        assert run(5) == 15
        assert executions(redis_client, name) == count, "a forged entry was used as a cache hit"
    assert not marker.exists(), "a forged cache entry was unpickled"


def test_forged_local_cache_entries_are_never_unpickled(redis_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("FLYTE_CELERY_REDIS_URL", redis_url)  # where the task counts its executions
    monkeypatch.setenv("FLYTE_CELERY_LOCAL_CACHE_PATH", str(tmp_path / "cache.db"))
    flyte.init_from_config()
    name = f"local-{secrets.token_hex(3)}"
    marker = tmp_path / "unpickled"

    def run() -> int:
        return int(flyte.with_runcontext(mode="local").run(cached_counted, name, 7).outputs().o0)

    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        assert run() == 21
        assert run() == 21
        assert executions(client, name) == 1
        with sqlite3.connect(tmp_path / "cache.db") as db:
            db.execute("UPDATE cache_entries SET value = ?", (marker_pickle(marker),))
        assert run() == 21
        assert executions(client, name) == 2
        assert not marker.exists()
        assert (tmp_path / "cache.key").stat().st_mode & 0o777 == 0o600
    finally:
        client.close()
        flyte.init()


def test_pickle_is_loaded_in_one_module_only() -> None:
    """The trust rule, held by grep: only `_values` unpickles, and it takes `Authenticated` bytes only."""
    package = Path(flyte.__file__).parent
    loaders = ("pickle.loads(", "cloudpickle.loads(", "pickle.load(", "Unpickler(", "marshal.loads(")
    offenders = {
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if any(loader in path.read_text() for loader in loaders)
    }
    assert offenders == {"_values.py"}
    source = (package / "_values.py").read_text()
    assert "def loads_value(data: Authenticated)" in source
    assert source.count("pickle.loads(") == 2  # loads_value, and copy_value of bytes made in-process


assert pickle  # the marker pickles above are plain pickles, as an attacker would write them
