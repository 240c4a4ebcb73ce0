"""The wire envelope: run context round trip, decoding errors, compatibility and the TaskContext it rebuilds."""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import datetime, timezone
from typing import Any, cast

import pytest

import flyte_celery as flyte
from flyte_celery._action_call import prepare_child_call, prepare_root_call
from flyte_celery._celery.controller import action_message, child_envelope
from flyte_celery._celery.envelope import (
    HEADER,
    MAX_ENVELOPE_CHARS,
    SCHEMA_VERSION,
    ActionMessage,
    Envelope,
    RunContextMessage,
    claimed_identity,
    decode_envelope,
    group_of,
)
from flyte_celery._context import ROOT_ACTION_NAME, ActionID, Frame, GroupData, RawDataPath, TaskContext
from flyte_celery._controllers.base import TaskCallSequencer
from flyte_celery._run_spec import RunSpec
from flyte_celery.errors import MessageDecodeError

# RunSpec fields the run message does not carry: custom_context travels per action (ActionMessage.custom_context);
# copy_style is spent by the launcher, which picks what goes into the run's bundle.
# A new RunSpec field must be added here or to the message.
NOT_CARRIED = {"custom_context", "copy_style"}

env = flyte.TaskEnvironment("unit-envelope", cache="auto")


@env.task
async def doubled(x: int) -> int:
    return x * 2


def full_spec(**changes: Any) -> RunSpec:
    """A RunSpec where every field differs from its default."""
    spec = RunSpec(
        name="run-full",
        mode="hybrid",
        project="proj",
        domain="dev",
        org="acme",
        version="v42",
        queue="q-run",
        default_queue="q-default",
        interruptible=True,
        raw_data_path="/tmp/raw",
        run_base_dir="/tmp/base/run-full",
        overwrite_cache=True,
        disable_run_cache=True,
        cache_lookup_scope="project-domain",
        service_account="robot",
        env_vars={"A": "1", "B": "two"},
        labels={"team": "ml"},
        annotations={"note": "x"},
        log_level=10,
        user_log_level=20,
        log_format="json",
        reset_root_logger=True,
        max_action_concurrency=7,
        custom_context={"trace": "abc"},
        run_start_time=datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc),
        interactive_mode=True,
        preserve_original_types=True,
    )
    return dataclasses.replace(spec, **changes)


def minimal_raw(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "run": {"name": "r1"},
        "action": {"name": "a0", "task": "env.t", "bundle": "digest", "queue": "q"},
    }
    raw.update(overrides)
    return raw


def text_of(raw: Any) -> str:
    """A header value as it travels: JSON text."""
    return json.dumps(raw)


def sample_envelope() -> Envelope:
    spec = full_spec()
    return Envelope(
        run=RunContextMessage.from_spec(spec),
        action=ActionMessage(
            name="abc123",
            parent="a0",
            task="unit-envelope.doubled",
            bundle="f" * 32,
            version="v42",
            group="g1",
            custom_context={"trace": "abc", "k": "v"},
            cache_key="g:deadbeef",
            read_cache=False,
            output_path="/tmp/base/run-full/abc123",
            queue="q-run",
            queued_at=1700000000.5,
            replay=True,
        ),
    )


# --- RunContextMessage <-> RunSpec ------------------------------------------------------------------------------


def test_every_runspec_field_is_carried_or_listed() -> None:
    spec_fields = {f.name for f in dataclasses.fields(RunSpec)}
    assert spec_fields - set(RunContextMessage.model_fields) == NOT_CARRIED
    assert set(RunContextMessage.model_fields) <= spec_fields


def test_from_spec_to_spec_round_trip_keeps_every_carried_field() -> None:
    spec = full_spec()
    back = RunContextMessage.from_spec(spec).to_spec()
    for field in dataclasses.fields(RunSpec):
        if field.name in NOT_CARRIED:
            continue
        assert getattr(back, field.name) == getattr(spec, field.name), field.name
    assert back.run_start_time is not None
    assert back.run_start_time.tzinfo is not None


def test_round_trip_through_json_keeps_run_context() -> None:
    spec = full_spec()
    message = RunContextMessage.from_spec(spec)
    wire = json.loads(json.dumps(message.model_dump(mode="json")))
    assert RunContextMessage.model_validate(wire).to_spec() == message.to_spec()


def test_default_spec_round_trips() -> None:
    spec = RunSpec(name="plain", mode="remote")
    assert RunContextMessage.from_spec(spec).to_spec() == spec


# --- encode / decode --------------------------------------------------------------------------------------------


def test_encode_is_compact_json_text_that_round_trips() -> None:
    envelope = sample_envelope()
    text = envelope.encode()
    assert isinstance(text, str)
    assert text == json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    assert decode_envelope(text) == envelope
    assert decode_envelope(text).encode() == text


def test_encode_is_deterministic() -> None:
    # The MAC covers the exact text: two encodings of one envelope must be the same text.
    assert sample_envelope().encode() == sample_envelope().encode()


def test_encode_of_minimal_envelope_round_trips() -> None:
    envelope = decode_envelope(text_of(minimal_raw()))
    assert decode_envelope(envelope.encode()) == envelope
    assert json.loads(envelope.encode()) == minimal_raw()


def test_non_ascii_text_round_trips_unescaped() -> None:
    envelope = Envelope(
        run=RunContextMessage(name="r1", env_vars={"GREETING": "gr\u00fc\u00df dich \u2603"}),
        action=ActionMessage(name="a0", task="env.t", bundle="digest", queue="q"),
    )
    text = envelope.encode()
    assert "gr\u00fc\u00df dich \u2603" in text
    assert decode_envelope(text).run.env_vars == {"GREETING": "gr\u00fc\u00df dich \u2603"}


def test_encoded_header_carries_its_schema_version() -> None:
    assert SCHEMA_VERSION == 2
    assert json.loads(sample_envelope().encode())["v"] == SCHEMA_VERSION
    assert json.loads(decode_envelope(text_of(minimal_raw(v=2))).encode())["v"] == 2


@pytest.mark.parametrize(
    "raw",
    [None, b"\x80bytes", ["a", "list"], {"v": 2, "run": {"name": "r1"}}, minimal_raw(), 42],
    ids=["none", "bytes", "list", "partial-dict", "whole-envelope-dict", "int"],
)
def test_a_header_that_is_not_text_is_refused_naming_the_header(raw: object) -> None:
    with pytest.raises(MessageDecodeError, match="not text") as info:
        decode_envelope(raw)
    assert info.value.field == HEADER
    assert isinstance(info.value.raw, bytes)
    assert info.value.code == "MessageDecodeError"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("garbage-header", "not JSON"),
        ("", "not JSON"),
        ('{"v": 2, "run": ', "not JSON"),
        ('["a", "list"]', "not a JSON object"),
        ("42", "not a JSON object"),
        ('"a string"', "not a JSON object"),
        ("null", "not a JSON object"),
    ],
)
def test_text_that_is_not_a_json_object_is_refused_naming_the_header(text: str, complaint: str) -> None:
    with pytest.raises(MessageDecodeError, match=complaint) as info:
        decode_envelope(text)
    assert info.value.field == HEADER
    assert info.value.raw is not None
    assert repr(text).encode() in info.value.raw


def test_text_over_the_size_cap_is_refused() -> None:
    raw = minimal_raw(padding="")
    fill = MAX_ENVELOPE_CHARS - len(text_of(raw))
    raw["padding"] = "x" * fill  # an unknown field, ignored: at the cap the envelope decodes
    assert len(text_of(raw)) == MAX_ENVELOPE_CHARS
    assert decode_envelope(text_of(raw)) == decode_envelope(text_of(minimal_raw()))
    raw["padding"] = "x" * (fill + 1)
    with pytest.raises(MessageDecodeError, match=f"over {MAX_ENVELOPE_CHARS} characters") as info:
        decode_envelope(text_of(raw))
    assert info.value.field == HEADER


@pytest.mark.parametrize("version", [99, 1, 0, "2", 2.0, None], ids=["99", "1", "0", "str", "float", "null"])
def test_unknown_schema_version_is_refused_naming_v(version: object) -> None:
    with pytest.raises(MessageDecodeError, match="unknown envelope schema version") as info:
        decode_envelope(text_of(minimal_raw(v=version)))
    assert info.value.field == "v"
    assert info.value.raw is not None
    assert repr(version).encode() in info.value.raw
    assert b"r1" in info.value.raw


def test_boolean_schema_version_is_refused() -> None:
    with pytest.raises(MessageDecodeError) as info:
        decode_envelope(text_of(minimal_raw(v=True)))
    assert info.value.field == "v"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda raw: raw["run"].update(name=123), "run.name"),
        (lambda raw: raw["run"].update(mode="sideways"), "run.mode"),
        (lambda raw: raw["run"].update(env_vars={"A": 1}), "run.env_vars.A"),
        (lambda raw: raw["run"].update(max_action_concurrency="many"), "run.max_action_concurrency"),
        (lambda raw: raw["action"].update(read_cache="perhaps"), "action.read_cache"),
        (lambda raw: raw["action"].update(queued_at="yesterday"), "action.queued_at"),
        (lambda raw: raw["action"].pop("task"), "action.task"),
        (lambda raw: raw["action"].update(bundle=""), "action.bundle"),
        (lambda raw: raw.pop("run"), "run"),
        (lambda raw: raw.update(action="a0"), "action"),
    ],
)
def test_bad_field_raises_naming_it_and_keeps_raw(mutate: Any, field: str) -> None:
    raw = minimal_raw()
    mutate(raw)
    with pytest.raises(MessageDecodeError) as info:
        decode_envelope(text_of(raw))
    assert info.value.field == field
    assert isinstance(info.value.raw, bytes)
    assert b"a0" in info.value.raw
    assert field in str(info.value)


def test_raw_is_bounded_for_huge_headers() -> None:
    raw = minimal_raw(v=99)
    raw["padding"] = "x" * 100_000
    with pytest.raises(MessageDecodeError) as info:
        decode_envelope(text_of(raw))
    assert info.value.field == "v"
    assert info.value.raw is not None
    assert 0 < len(info.value.raw) <= 4096


def test_decode_does_not_mutate_what_it_is_given() -> None:
    raw = minimal_raw()
    text = text_of(raw)
    before = copy.deepcopy(raw)
    decode_envelope(text)
    assert json.loads(text) == raw == before


def test_message_without_optional_fields_decodes_with_defaults() -> None:
    raw = minimal_raw()
    del raw["v"]  # `v` defaults to this schema version
    envelope = decode_envelope(text_of(raw))
    assert envelope.v == SCHEMA_VERSION
    assert envelope.run.mode == "remote"
    assert envelope.run.env_vars == {}
    assert envelope.run.labels == {}
    assert envelope.run.cache_lookup_scope == "global"
    assert envelope.run.run_start_time is None
    assert envelope.action.parent is None
    assert envelope.action.group is None
    assert envelope.action.read_cache is True
    assert envelope.action.replay is False
    assert envelope.action.custom_context == {}
    assert envelope.action.cache_key is None


def test_unknown_extra_fields_are_ignored() -> None:
    raw = minimal_raw(future_top_level={"x": 1})
    raw["run"]["future_run_field"] = [1, 2]
    raw["action"]["future_action_field"] = "yes"
    envelope = decode_envelope(text_of(raw))
    assert envelope == decode_envelope(text_of(minimal_raw()))
    encoded = json.loads(envelope.encode())
    assert "future_action_field" not in encoded["action"]
    assert "future_top_level" not in encoded


def test_task_id_and_group() -> None:
    envelope = sample_envelope()
    assert envelope.task_id == "run-full-abc123"
    assert group_of(envelope) == GroupData("g1")
    assert group_of(decode_envelope(text_of(minimal_raw()))) is None


# --- claimed_identity: who a message says it is, before it is trusted or validated --------------------------------


@pytest.mark.parametrize(
    "raw",
    [minimal_raw(), minimal_raw(v=99), {"run": {"name": "r1"}, "action": {"name": "a0"}}],
    ids=["valid", "unknown-version", "names-only"],
)
def test_claimed_identity_reads_run_and_action_of_any_version(raw: dict[str, Any]) -> None:
    assert claimed_identity(text_of(raw)) == ("r1", "a0")


def test_claimed_identity_of_an_encoded_envelope() -> None:
    assert claimed_identity(sample_envelope().encode()) == ("run-full", "abc123")


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "",
        "[1, 2]",
        "42",
        '{"run": {"name": "r1"}}',
        '{"action": {"name": "a0"}}',
        '{"run": "r1", "action": "a0"}',
        '{"run": ["r1"], "action": {"name": "a0"}}',
        '{"run": {"name": 1}, "action": {"name": "a0"}}',
        '{"run": {"name": "r1"}, "action": {"name": null}}',
        '{"run": {"name": ""}, "action": {"name": "a0"}}',
        '{"run": {"name": "r1"}, "action": {"name": ""}}',
    ],
)
def test_claimed_identity_is_none_when_no_identity_is_named(text: str) -> None:
    assert claimed_identity(text) is None


# --- the TaskContext a worker rebuilds ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["remote", "hybrid", "local"])
def test_root_task_context_matches_local_mode(mode: Any) -> None:
    # As the launcher does: the run version defaults to the bundle digest before the root call is prepared.
    spec = full_spec(version="digest-0123", disable_run_cache=False)
    call = prepare_root_call(spec, doubled, (3,), {}, ROOT_ACTION_NAME)
    envelope = Envelope(
        run=RunContextMessage.from_spec(spec),
        action=action_message(call, "digest-0123", spec, parent=None, group=None),
    )
    wire = decode_envelope(envelope.encode())
    assert wire.task_context(mode) == call.context.replace(mode=mode)
    assert wire.action.cache_key == call.cache_key
    assert call.cache_key is not None


def test_root_task_context_without_run_version_uses_cache_version() -> None:
    spec = full_spec(version=None, disable_run_cache=False, custom_context={})
    call = prepare_root_call(spec, doubled, (1,), {}, ROOT_ACTION_NAME)
    envelope = Envelope(
        run=RunContextMessage.from_spec(spec), action=action_message(call, "d", spec, parent=None, group=None)
    )
    context = decode_envelope(envelope.encode()).task_context("remote")
    assert context.version == call.context.version != ""
    assert context == call.context.replace(mode="remote")


def test_child_task_context_matches_local_mode() -> None:
    spec = full_spec(disable_run_cache=False)
    parent_action = ActionID(name="a0", run_name=spec.name, project=spec.project, domain=spec.domain, org=spec.org)
    parent = TaskContext(
        action=parent_action,
        mode="remote",
        version="v42",
        raw_data_path=RawDataPath(spec.raw_data_path),
        run_base_dir=spec.run_base_dir,
        output_path=f"{spec.run_base_dir}/a0",
        custom_context={"trace": "abc", "inner": "1"},
        run_start_time=spec.run_start_time,
        interactive_mode=True,
        group_data=GroupData("batch"),
    )
    frame = Frame(task=parent, run=spec, controller=cast(Any, None))
    call = prepare_child_call(frame, doubled, (5,), {}, TaskCallSequencer(), "local")
    envelope = child_envelope(call, frame, "digest-1")
    wire = decode_envelope(envelope.encode())
    assert wire.action.parent == "a0"
    assert wire.action.group == "batch"
    assert wire.task_context("remote", attempt=2) == call.context.replace(mode="remote", attempt_number=2)
