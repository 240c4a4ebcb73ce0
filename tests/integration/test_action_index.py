"""The run index and a run's action index against a real Redis: ATTACH, START and COMPLETE keep the action index
in the round trips they already make (queued once, started, ended with the first outcome; nothing for an action it
does not hold, nothing beyond its bound), a launch indexes the run, and listings filter, order and drop expired runs.
Everything in the indexes is JSON text, read back without trusting it."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from redis.crc import key_slot

from flyte_celery._celery.action_index import (
    END_SUFFIX,
    START_SUFFIX,
    end_entry,
    new_entry,
    read_actions,
    short_value,
)
from flyte_celery._celery.keys import Keys
from flyte_celery._celery.outcome import Outcome
from flyte_celery._celery.records import ATTACH, COMPLETE, START, Start
from flyte_celery._celery.run_index import index_run, list_runs, read_run
from flyte_celery._config_model import RetentionSettings
from flyte_celery._run import ActionPhase
from flyte_celery._run_details import RunQuery
from flyte_celery._run_spec import RunSpec
from flyte_celery.errors import ActionAbortedError, MaxRuntimeExceededError, RuntimeUserError

RUN = "run-idx"
PREFIX = "unit-index:"
RESULT_TTL_S = 600
RUN_TTL_S = 1200
BOUND = 1000


@pytest.fixture
def keys() -> Keys:
    return Keys(PREFIX, RetentionSettings(results_s=RESULT_TTL_S, runs_s=RUN_TTL_S))


@pytest.fixture
def run_record(redis_client: Any, keys: Keys) -> str:
    """The run's record and its index with the root queued, as a launch writes them."""
    redis_client.hset(keys.run(RUN), mapping={"root_task": "env.main", "mode": "remote", "created_at": "1"})
    redis_client.hset(keys.actions(RUN), "a0", new_entry("env.main", "(n=1)", 1.0))
    redis_client.expire(keys.run(RUN), RUN_TTL_S)
    redis_client.expire(keys.actions(RUN), RUN_TTL_S)
    return keys.run(RUN)


def attach(client: Any, keys: Keys, action: str, entry: str, bound: int = BOUND, republish: int = 0) -> list[Any]:
    """ATTACH as the runtime sends it for a wait that may publish `action` (its index entry given)."""
    script_keys = [keys.result(RUN, action), keys.waiters(RUN, action), keys.enqueued(RUN, action), keys.actions(RUN)]
    args = ["chan", RESULT_TTL_S, f"token-{time.monotonic_ns()}", republish, action, entry, RUN_TTL_S, bound]
    return list(client.eval(ATTACH, len(script_keys), *script_keys, *args))


def start(client: Any, keys: Keys, action: str, at: float = 5.0, bound: int = BOUND) -> Start:
    script_keys = [keys.run(RUN), keys.result(RUN, action), keys.aborted(RUN), keys.message(RUN, action)]
    script_keys.append(keys.actions(RUN))
    args = ["message", RESULT_TTL_S, action, at, bound]
    return Start(client.eval(START, len(script_keys), *script_keys, *args).decode())


def complete(client: Any, keys: Keys, action: str, outcome: Outcome, at: float = 9.0) -> int:
    phase = "" if action != "a0" else ("succeeded" if outcome.error is None else "failed")
    script_keys = [keys.run(RUN), keys.result(RUN, action), keys.waiters(RUN, action), keys.message(RUN, action)]
    script_keys += [keys.enqueued(RUN, action), keys.actions(RUN)]
    args = [b"sealed", RESULT_TTL_S, f"{RUN}:{action}", 1, action, end_entry(outcome, at), phase, at]
    return int(client.eval(COMPLETE, len(script_keys), *script_keys, *args))


def index(client: Any, keys: Keys) -> dict[str, Any]:
    return {k.decode(): v.decode() for k, v in client.hgetall(keys.actions(RUN)).items()}


def test_the_action_index_is_in_its_runs_cluster_slot() -> None:
    keys = Keys(PREFIX)
    for run in ("r1", "odd}run", "odd{run"):
        assert key_slot(keys.actions(run).encode()) == key_slot(keys.run(run).encode())
    assert keys.actions("r1") == "unit-index:{r1}:actions"
    assert keys.runs == "unit-index:runs"


def test_an_action_is_indexed_as_queued_once_by_the_attach_that_publishes_it(
    redis_client: Any, keys: Keys, run_record: str
) -> None:
    first = new_entry("env.leaf", "(i=1)", 2.0, parent="a0", group="g")
    assert attach(redis_client, keys, "c1", first) == [None, 1]
    assert attach(redis_client, keys, "c1", new_entry("env.other", "(i=2)", 3.0)) == [None, 0]  # a second waiter
    assert attach(redis_client, keys, "c1", new_entry("env.other", "(i=2)", 3.0), republish=1) == [None, 1]  # replay
    assert json.loads(index(redis_client, keys)["c1"]) == {
        "task": "env.leaf", "inputs": "(i=1)", "queued": 2.0, "parent": "a0", "group": "g",
    }  # fmt: skip
    assert RUN_TTL_S - 5 < redis_client.ttl(keys.actions(RUN)) <= RUN_TTL_S


def test_an_action_that_ended_before_the_attach_that_published_it_is_indexed_all_the_same(
    redis_client: Any, keys: Keys, run_record: str
) -> None:
    # A first attempt's message goes out while its attach is in flight: a fast worker can start and finish the
    # action before the attach runs, which then finds the result.
    assert start(redis_client, keys, "c1", at=5.0) is Start.START
    assert complete(redis_client, keys, "c1", Outcome(value=4), at=6.0) == 1
    found, must_publish = attach(redis_client, keys, "c1", new_entry("env.leaf", "(i=2)", 4.0, parent="a0"))
    assert (found, must_publish) == (b"sealed", 0)
    (child,) = [a for a in read_actions(RUN, redis_client.hgetall(keys.actions(RUN))) if a.name == "c1"]
    assert (child.task_name, child.inputs_repr, child.parent, child.phase) == (
        "env.leaf",
        "(i=2)",
        "a0",
        ActionPhase.SUCCEEDED,
    )
    assert child.runtime is not None
    assert child.runtime.total_seconds() == 1.0


def test_attach_indexes_no_action_beyond_the_bound(redis_client: Any, keys: Keys, run_record: str) -> None:
    fields = redis_client.hlen(keys.actions(RUN))
    assert attach(redis_client, keys, "c1", new_entry("env.leaf", "", 2.0), bound=fields) == [None, 1]
    assert start(redis_client, keys, "c1", bound=fields) is Start.START
    assert complete(redis_client, keys, "c1", Outcome(value=1)) == 1
    assert set(index(redis_client, keys)) == {"a0"}  # published and run all the same, but not indexed


def test_start_and_complete_record_the_life_of_an_indexed_action(
    redis_client: Any, keys: Keys, run_record: str
) -> None:
    attach(redis_client, keys, "c1", new_entry("env.leaf", "(i=1)", 2.0, parent="a0"))
    assert start(redis_client, keys, "c1", at=5.0) is Start.START
    (queued,) = [a for a in read_actions(RUN, redis_client.hgetall(keys.actions(RUN))) if a.name == "c1"]
    assert (queued.phase, queued.start_time.timestamp() if queued.start_time else None) == (ActionPhase.RUNNING, 5.0)

    assert complete(redis_client, keys, "c1", Outcome(value=[1, 2]), at=9.0) == 1
    assert complete(redis_client, keys, "c1", Outcome(error=RuntimeUserError("Late", "a second outcome"))) == 0
    root, child = read_actions(RUN, redis_client.hgetall(keys.actions(RUN)))
    assert (root.name, root.phase, root.task_name, root.inputs_repr) == ("a0", ActionPhase.QUEUED, "env.main", "(n=1)")
    assert (child.name, child.task_name, child.parent, child.phase) == ("c1", "env.leaf", "a0", ActionPhase.SUCCEEDED)
    assert (child.outputs_repr, child.error_info, child.done()) == ("[1, 2]", None, True)
    assert child.runtime is not None
    assert child.runtime.total_seconds() == 4.0


def test_the_roots_end_goes_to_the_run_record_too(redis_client: Any, keys: Keys, run_record: str) -> None:
    error = RuntimeUserError("ValueError", "boom", traceback_text="Traceback...\nValueError: boom\n")
    assert complete(redis_client, keys, "a0", Outcome(error=error), at=12.5) == 1
    record, details = read_run(redis_client, keys, RUN) or ({}, None)
    assert (record[b"phase"], record[b"ended_at"]) == (b"failed", b"12.5")
    assert details is not None
    assert details.phase is ActionPhase.FAILED
    assert details.error_info is not None
    assert (details.error_info.code, details.error_info.message) == ("ValueError", "boom")
    assert details.error_info.traceback.endswith("ValueError: boom\n")


def test_the_end_of_an_action_the_index_does_not_hold_is_not_indexed(
    redis_client: Any, keys: Keys, run_record: str
) -> None:
    # A trace records its output through COMPLETE too, without ever being queued or started.
    before = index(redis_client, keys)
    assert complete(redis_client, keys, "trace1", Outcome(value=3)) == 1
    assert index(redis_client, keys) == before


def test_a_start_that_does_not_start_marks_nothing(redis_client: Any, keys: Keys, run_record: str) -> None:
    attach(redis_client, keys, "c1", new_entry("env.leaf", "", 2.0))
    redis_client.set(keys.aborted(RUN), "stop")
    assert start(redis_client, keys, "c1") is Start.ABORTED
    assert f"c1{START_SUFFIX}" not in index(redis_client, keys)


def test_start_creates_no_index_for_a_run_that_has_none(redis_client: Any, keys: Keys) -> None:
    redis_client.hset(keys.run(RUN), "mode", "remote")  # a run launched before there was an index
    assert start(redis_client, keys, "c1") is Start.START
    assert not redis_client.exists(keys.actions(RUN))


def test_end_entries_say_how_the_action_ended() -> None:
    assert len(json.loads(end_entry(Outcome(value="x" * 1000), 1.0))["outputs"]) <= 160
    aborted = json.loads(end_entry(Outcome(error=ActionAbortedError("stop")), 1.0))
    timed_out = json.loads(end_entry(Outcome(error=MaxRuntimeExceededError("slow")), 1.0))
    assert (aborted["phase"], timed_out["phase"]) == ("aborted", "timed_out")
    long_traceback = "\n".join(f"line {i}" for i in range(2000))
    failed = json.loads(end_entry(Outcome(error=RuntimeUserError("E", "m", traceback_text=long_traceback)), 1.0))
    assert failed["phase"] == "failed"
    assert failed["error"]["traceback"].endswith("line 1999")
    assert len(failed["error"]["traceback"]) < len(long_traceback)


def test_short_values_are_bounded_in_size_and_cost() -> None:
    assert short_value(b"\0" * 10_000_000) == "<bytes: 10,000,000 bytes>"
    assert len(short_value(list(range(1_000_000)))) < 100
    assert len(short_value("y" * 100_000)) <= 160

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    assert "Broken" in short_value(Broken())


def test_junk_in_the_index_is_skipped_not_trusted() -> None:
    fields = {
        b"a0": new_entry("env.main", "", 1.0).encode(),
        b"junk": b"\x80not json",
        b"list": b"[1, 2]",
        b"c1" + START_SUFFIX.encode(): b"not a time",
        b"c2" + END_SUFFIX.encode(): json.dumps({"phase": "bogus", "ended": "x"}).encode(),
    }
    actions = {a.name: a for a in read_actions(RUN, fields)}
    assert set(actions) == {"a0", "c2"}
    assert (actions["c2"].phase, actions["c2"].task_name, actions["c2"].end_time) == (ActionPhase.FAILED, "?", None)


# --- the run index ----------------------------------------------------------------------------------------------


def launch(client: Any, keys: Keys, name: str, created_at: float, **spec: Any) -> None:
    """What a launch writes: the record, then the index in the same pipeline."""
    project, domain, mode = spec.get("project", ""), spec.get("domain", ""), spec.get("mode", "remote")
    record = {
        "created_at": str(created_at),
        "root_task": "env.main",
        "mode": mode,
        "project": project,
        "domain": domain,
    }
    with client.pipeline(transaction=False) as pipe:
        pipe.hset(keys.run(name), mapping=record)
        index_run(pipe, keys, RunSpec(name=name, mode=mode), "env.main", "(x=1)", created_at)
        pipe.execute()


def names(client: Any, keys: Keys, **filters: Any) -> list[str]:
    given = [filters.get(name) for name in ("in_phase", "project", "domain", "name_prefix")]
    query = RunQuery.build(*given, filters.get("limit", 100))
    return [name for name, _, _ in list_runs(client, keys, query)]


def test_runs_are_listed_newest_first_and_filtered(redis_client: Any, keys: Keys) -> None:
    now = time.time()
    launch(redis_client, keys, "train-1", now - 30, project="ml", domain="dev")
    launch(redis_client, keys, "train-2", now - 20, project="ml", domain="prod")
    launch(redis_client, keys, "etl-1", now - 10, project="data", mode="hybrid")
    redis_client.hset(keys.run("train-1"), mapping={"phase": "failed", "ended_at": str(now)})

    assert names(redis_client, keys) == ["etl-1", "train-2", "train-1"]
    assert names(redis_client, keys, limit=2) == ["etl-1", "train-2"]
    assert names(redis_client, keys, project="ml") == ["train-2", "train-1"]
    assert names(redis_client, keys, project="ml", domain="prod") == ["train-2"]
    assert names(redis_client, keys, name_prefix="train") == ["train-2", "train-1"]
    assert names(redis_client, keys, in_phase=["failed"]) == ["train-1"]
    assert names(redis_client, keys, in_phase=["running"]) == ["etl-1"]  # a hybrid root runs from the start
    assert names(redis_client, keys, in_phase=["PHASE_QUEUED"]) == ["train-2"]
    assert names(redis_client, keys, in_phase=["succeeded"]) == []
    assert RUN_TTL_S - 5 < redis_client.ttl(keys.runs) <= RUN_TTL_S


def test_a_listing_drops_runs_whose_record_expired(redis_client: Any, keys: Keys) -> None:
    now = time.time()
    launch(redis_client, keys, "old", now - 5)
    launch(redis_client, keys, "new", now)
    redis_client.delete(keys.run("old"))
    assert names(redis_client, keys) == ["new"]
    assert redis_client.zrange(keys.runs, 0, -1) == [b"new"]


def test_a_launch_trims_runs_older_than_the_retention(redis_client: Any, keys: Keys) -> None:
    now = time.time()
    launch(redis_client, keys, "ancient", now - RUN_TTL_S - 10)
    launch(redis_client, keys, "recent", now)
    assert redis_client.zrange(keys.runs, 0, -1) == [b"recent"]


@pytest.mark.parametrize(
    ("filters", "wrong"),
    [
        ({"in_phase": ["sleeping"]}, "unknown phase 'sleeping'"),
        ({"limit": 0}, "limit must be"),
        ({"limit": True}, "limit"),
    ],
)
def test_bad_filters_are_refused_naming_them(filters: dict[str, Any], wrong: str) -> None:
    with pytest.raises(ValueError, match=wrong):
        RunQuery.build(filters.get("in_phase"), None, None, None, filters.get("limit", 10))
