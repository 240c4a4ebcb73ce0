"""Thousands of malformed, forged and tampered-with messages against one real worker: it never dies, never unpickles
anything unauthenticated (unpickling any payload below creates a marker file), records nothing under the names the
messages invent, refuses every one of them into the dead letters, and serves a real run right after.

Each fuzzed message starts from an authentic one and is broken in a way that must get it refused (so the count of
dead letters is exact): its body, a Celery header, our envelope or MAC, its content type, or its inputs. The seed
is printed on failure; `FUZZ_SEED=<n>` replays a run.
"""

from __future__ import annotations

import base64
import json
import os
import random
import secrets
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import flyte_celery as flyte
from flyte_celery._celery.app import make_app
from flyte_celery._celery.envelope import ActionMessage, Envelope, RunContextMessage
from flyte_celery._celery.keys import Keys
from flyte_celery._celery.message import MAC_HEADER
from flyte_celery._config_loader import load_settings
from flyte_celery._keyrings import fleet_keyring
from tests._workers import WorkerFactory
from tests.integration._raw_messages import RawMessage, RawQueue, keys_naming, marker_pickle, sealed, wait_dead_letters
from tests.integration.programs import remote_tasks
from tests.integration.test_poison_messages import KILLERS

FUZZ_MESSAGES = 2000
DRAIN_DEADLINE_S = 240.0
RUN_DEADLINE_S = 60.0
ENVELOPE = "flyte_celery"
# Values no header of ours may hold (every Celery header is checked against exactly what our publisher sends).
ODD_VALUES: list[Any] = ["", "x", -0.0, 1.5, 7, True, [], [1, 2], {}, {"a": 1}, "2026-01-01T00:00:00", "\x00" * 3]
CELERY_HEADERS = ["lang", "task", "id", "shadow", "eta", "expires", "group", "group_index", "retries", "timelimit",
                  "root_id", "parent_id", "argsrepr", "kwargsrepr", "origin", "ignore_result",
                  "replaced_task_nesting", "stamped_headers", "stamps"]  # fmt: skip
CONTENT_KINDS = [("application/x-python-serialize", "binary"), ("application/data", "binary"),
                 ("application/json", "binary"), ("text/plain", "utf-8"), ("application/yaml", "utf-8")]  # fmt: skip
# Headers whose text is free (only its type is checked): a different string is still a valid message.
TYPE_CHECKED_TEXT = frozenset({"argsrepr", "kwargsrepr", "origin"})


def _odd_value(rng: random.Random, name: str, current: Any) -> Any:
    """A value for header `name` that our publisher never sends for this message."""
    candidates = [v for v in ODD_VALUES if not (type(v) is type(current) and v == current)]
    if name in TYPE_CHECKED_TEXT:
        candidates = [v for v in candidates if not isinstance(v, str)]
    if name == "ignore_result":
        candidates = [v for v in candidates if not isinstance(v, bool)]
    if name == "stamps":
        candidates = [v for v in candidates if v != {}]
    return rng.choice(candidates)


def _flip(rng: random.Random, text: str) -> str:
    at = rng.randrange(len(text))
    replacement = rng.choice('0123456789abcdef{}[]":,xyz')
    while replacement == text[at]:
        replacement = rng.choice('0123456789abcdef{}[]":,xyz')
    return text[:at] + replacement + text[at + 1 :]


def _mutations(marker: Path) -> list[Callable[[random.Random, RawMessage], RawMessage]]:
    def body_json(rng: random.Random, m: RawMessage) -> RawMessage:
        values: list[Any] = [[], {}, None, "x", 7, [1], [[], {}], [["a", "b"], {}, {}], [["a"], {"k": 1}, {}],
                             [["a"], {}, {"callbacks": [1]}], [[1], {}, {}], [["a"], {}, {}, 4]]  # fmt: skip
        return replace(m, body=json.dumps(rng.choice(values)).encode())

    def body_bytes(rng: random.Random, m: RawMessage) -> RawMessage:
        return replace(m, body=rng.randbytes(rng.randrange(0, 64)))

    def celery_header(rng: random.Random, m: RawMessage) -> RawMessage:
        name = rng.choice(CELERY_HEADERS)
        return replace(m, headers={**m.headers, name: _odd_value(rng, name, m.headers.get(name))})

    def missing_header(rng: random.Random, m: RawMessage) -> RawMessage:
        name = rng.choice(["lang", "task", "id", ENVELOPE, MAC_HEADER])
        return replace(m, headers={k: v for k, v in m.headers.items() if k != name})

    def extra_header(rng: random.Random, m: RawMessage) -> RawMessage:
        return replace(m, headers={**m.headers, f"x-{rng.randrange(1000)}": rng.choice(ODD_VALUES)})

    def envelope_text(rng: random.Random, m: RawMessage) -> RawMessage:
        return replace(m, headers={**m.headers, ENVELOPE: _flip(rng, m.headers[ENVELOPE])})

    def envelope_value(rng: random.Random, m: RawMessage) -> RawMessage:
        return replace(m, headers={**m.headers, ENVELOPE: rng.choice(ODD_VALUES[2:])})

    def mac_digest(rng: random.Random, m: RawMessage) -> RawMessage:
        kid, digest = m.headers[MAC_HEADER].split(":")
        return replace(m, headers={**m.headers, MAC_HEADER: f"{kid}:{_flip(rng, digest)}"})

    def mac_junk(rng: random.Random, m: RawMessage) -> RawMessage:
        junk = rng.choice(["", ":", "x:y", "0" * 8, "zzzzzzzz:" + "0" * 64, rng.randbytes(8).hex(), 5, None, []])
        return replace(m, headers={**m.headers, MAC_HEADER: junk})

    def unsigned_pickle(rng: random.Random, m: RawMessage) -> RawMessage:
        # A payload that would create the marker if unpickled, under the original (now wrong) MAC.
        return m.with_args([base64.b64encode(marker_pickle(marker)).decode("ascii")])

    def inputs_junk(rng: random.Random, m: RawMessage) -> RawMessage:
        return m.with_args([rng.choice(["", "***", "Zm9v", 5, None, ["x"]])])

    def content(rng: random.Random, m: RawMessage) -> RawMessage:
        content_type, encoding = rng.choice(CONTENT_KINDS)
        return replace(m, content_type=content_type, content_encoding=encoding)

    def killer(rng: random.Random, m: RawMessage) -> RawMessage:
        return rng.choice(list(KILLERS.values()))(m)

    return [body_json, body_bytes, celery_header, missing_header, extra_header, envelope_text, envelope_value,
            mac_digest, mac_junk, unsigned_pickle, inputs_junk, content, killer]  # fmt: skip


def test_fuzzed_messages_never_kill_a_worker_nor_get_unpickled(
    worker_factory: WorkerFactory, redis_client: Any, tmp_path: Path
) -> None:
    seed = int(os.environ.get("FUZZ_SEED", secrets.randbits(32)))
    rng = random.Random(seed)
    worker = worker_factory.start(2, FLYTE_CELERY_RETENTION_DEAD_LETTERS=str(FUZZ_MESSAGES * 2))
    real = flyte.with_runcontext(mode="remote").run(remote_tasks.add_one, 1)
    assert real.outputs(timeout=RUN_DEADLINE_S).o0 == 2
    settings = load_settings()
    keys = Keys(settings.redis.key_prefix, settings.retention)
    bundle = redis_client.hget(keys.run(real.name), "bundle").decode()
    app = make_app(settings)
    keyring = fleet_keyring(settings)
    marker = tmp_path / "unpickled"
    mutations = _mutations(marker)
    queue = worker_factory.queue
    raw = RawQueue(worker_factory.broker_url, queue)
    try:
        for n in range(FUZZ_MESSAGES):
            envelope = Envelope(
                run=RunContextMessage(name=f"fuzz-{seed}-{n}", default_queue=queue),
                action=ActionMessage(name="a0", task=remote_tasks.add_one.name, bundle=bundle, queue=queue),
            )
            authentic = sealed(app, keyring, envelope, {"x": n})
            raw.send(rng.choice(mutations)(rng, authentic))
    finally:
        raw.close()
        app.close()
    context = f"(FUZZ_SEED={seed})"
    letters = wait_dead_letters(redis_client, keys, FUZZ_MESSAGES, DRAIN_DEADLINE_S)
    assert len(letters) == FUZZ_MESSAGES, context
    assert worker.process.poll() is None, f"the worker died {context}"
    assert "Unrecoverable error" not in worker.log(), context
    assert not marker.exists(), f"an unauthenticated payload was unpickled {context}"
    assert keys_naming(redis_client, f"fuzz-{seed}") == [], f"records under invented names {context}"
    after = flyte.with_runcontext(mode="remote").run(remote_tasks.add_one, 41)
    assert after.outputs(timeout=RUN_DEADLINE_S).o0 == 42, context
