"""Sealed blobs and stored outcomes: what is read back is opened only where it was sealed for, by a key of the ring,
and a result is never silently dropped."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import cloudpickle
import pytest

from flyte_celery import _signing
from flyte_celery._celery.outcome import RESULT_PURPOSE, Outcome, decode_outcome, encode_outcome
from flyte_celery._signing import (
    DEVELOPMENT_KEY,
    DIGEST_BYTES,
    KEY_ID_BYTES,
    MAGIC,
    SEAL_HEADER_BYTES,
    KeyRing,
    key_id,
    keyring_from_secrets,
)
from flyte_celery._values import UNSERIALIZABLE_CODE
from flyte_celery.errors import (
    BaseRuntimeError,
    CustomError,
    MaxRuntimeExceededError,
    RuntimeSystemError,
    RuntimeUserError,
    UnknownSigningKeyError,
    UnsafePayloadError,
)

KEY = b"unit-test-signing-key"
OLD_KEY = b"unit-test-retired-key"
OTHER_KEY = b"a key of another fleet"
RING = KeyRing(KEY)
RUN, ACTION = "run-1", "a0"
BINDING = ("result", RUN, ACTION)  # purpose, then where the blob belongs


def _numbers() -> Iterator[int]:
    yield 1


def _refuse_rebuild() -> None:
    raise TypeError("this value cannot be rebuilt")


class PicklesButWillNotLoad:
    """Pickles fine; unpickling it raises (like an exception class whose __init__ needs more arguments)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_refuse_rebuild, ())


def flipped(blob: bytes, index: int) -> bytes:
    changed = bytearray(blob)
    changed[index] ^= 0x01
    return bytes(changed)


def refused(ring: KeyRing, blob: bytes, *binding: str) -> UnsafePayloadError:
    """The error `ring.open` refuses `blob` with, which must be the plain one (not an unknown key)."""
    with pytest.raises(UnsafePayloadError) as info:
        ring.open(blob, *binding, what="the blob")
    assert type(info.value) is UnsafePayloadError
    return info.value


# --- seal / open ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"payload", bytes(range(256)) * 40])
def test_seal_open_round_trip(data: bytes) -> None:
    blob = RING.seal(data, *BINDING)
    assert blob.startswith(MAGIC)
    assert len(blob) == SEAL_HEADER_BYTES + len(data) == len(MAGIC) + KEY_ID_BYTES + DIGEST_BYTES + len(data)
    assert blob[len(MAGIC) : len(MAGIC) + KEY_ID_BYTES].hex() == RING.current_id
    opened = RING.open(blob, *BINDING, what="the blob")
    assert opened == data
    assert type(opened) is bytes


def test_sealing_is_deterministic_and_depends_on_the_data() -> None:
    assert RING.seal(b"x", *BINDING) == RING.seal(b"x", *BINDING) != RING.seal(b"y", *BINDING)


@pytest.mark.parametrize(
    ("sealed_for", "opened_as"),
    [
        (("result", "run-1", "a0"), ("result", "run-2", "a0")),
        (("result", "run-1", "a0"), ("result", "run-1", "a1")),
        (("result", "run-1", "a0"), ("bundle", "run-1", "a0")),
        (("cache", "key-A"), ("cache", "key-B")),
        (("cache", "key-A"), ("result", "key-A")),
        (("result", "run-1", "a0"), ("result", "run-1")),
        (("result", "run-1", "a0"), ("result", "run-1", "a0", "")),
        # Parts are length-prefixed: moving a boundary is another binding.
        (("result", "run-1", "a0"), ("result", "run-1a", "0")),
        (("result", "run-1", "a0"), ("result:run-1", "a0")),
    ],
    ids=[
        "other-run",
        "other-action",
        "other-purpose",
        "other-cache-key",
        "cache-entry-as-result",
        "fewer-parts",
        "more-parts",
        "shifted-boundary",
        "purpose-joined-with-run",
    ],
)
def test_blob_moved_to_another_binding_is_refused(sealed_for: tuple[str, ...], opened_as: tuple[str, ...]) -> None:
    blob = RING.seal(b"cloudpickled bytes", *sealed_for)
    assert RING.open(blob, *sealed_for, what="the blob") == b"cloudpickled bytes"
    error = refused(RING, blob, *opened_as)
    assert "the blob failed authentication" in str(error)


@pytest.mark.parametrize(
    "index",
    [SEAL_HEADER_BYTES - 1, SEAL_HEADER_BYTES - DIGEST_BYTES, SEAL_HEADER_BYTES, SEAL_HEADER_BYTES + 5, -1],
    ids=["digest-last", "digest-first", "data-first", "data-middle", "data-last"],
)
def test_tampered_digest_or_data_is_refused(index: int) -> None:
    blob = RING.seal(b"cloudpickled bytes", *BINDING)
    refused(RING, flipped(blob, index), *BINDING)


def test_every_single_byte_change_is_refused() -> None:
    blob = RING.seal(b"some data", *BINDING)
    for index in range(len(blob)):
        with pytest.raises(UnsafePayloadError):
            RING.open(flipped(blob, index), *BINDING, what="the blob")


def test_truncated_or_extended_blob_is_refused() -> None:
    blob = RING.seal(b"cloudpickled bytes", *BINDING)
    refused(RING, blob[:-1], *BINDING)
    refused(RING, blob + b"\x00", *BINDING)


@pytest.mark.parametrize(
    "blob",
    [b"", b"short", MAGIC + b"x" * (KEY_ID_BYTES + DIGEST_BYTES - 1), b"fcs1" + b"x" * 64],
    ids=["empty", "short", "header-one-byte-short", "other-magic"],
)
def test_what_is_not_a_sealed_blob_is_refused(blob: bytes) -> None:
    error = refused(RING, blob, *BINDING)
    assert "the blob is not a sealed payload" in str(error)


def test_unsealed_pickle_is_refused() -> None:
    error = refused(RING, cloudpickle.dumps({"a": "dict long enough to pass any length check" * 2}), *BINDING)
    assert "not a sealed payload" in str(error)


def test_refusal_is_a_system_error() -> None:
    error = refused(RING, b"", *BINDING)
    assert (error.code, error.kind) == ("UnsafePayloadError", "system")


# --- key ids, unknown keys and rotation -------------------------------------------------------------------------


def test_key_ids_are_eight_hex_digits_stable_and_distinct() -> None:
    ids = {key_id(key) for key in (KEY, OLD_KEY, OTHER_KEY, DEVELOPMENT_KEY, b"k")}
    assert len(ids) == 5
    for kid in ids:
        assert re.fullmatch(r"[0-9a-f]{8}", kid)
    assert key_id(KEY) == key_id(bytes(KEY)) == RING.current_id
    assert KEY.hex()[:8] != key_id(KEY)


def test_blob_of_an_unknown_key_names_its_id_and_the_accepted_ids() -> None:
    blob = KeyRing(OTHER_KEY).seal(b"data", *BINDING)
    ring = KeyRing(KEY, [OLD_KEY])
    with pytest.raises(UnknownSigningKeyError) as info:
        ring.open(blob, *BINDING, what="result of action run-1/a0")
    error = info.value
    assert isinstance(error, UnsafePayloadError)
    assert error.code == "UnknownSigningKeyError"
    assert error.key_id == key_id(OTHER_KEY)
    assert error.accepted_ids == ring.ids == (key_id(KEY), key_id(OLD_KEY))
    for part in ("result of action run-1/a0", key_id(OTHER_KEY), key_id(KEY), key_id(OLD_KEY)):
        assert part in str(error)


def test_tampered_key_id_is_an_unknown_key() -> None:
    blob = RING.seal(b"data", *BINDING)
    with pytest.raises(UnknownSigningKeyError) as info:
        RING.open(flipped(blob, len(MAGIC)), *BINDING, what="the blob")
    assert info.value.key_id != RING.current_id


def test_rotation_opens_old_blobs_and_seals_with_the_new_key() -> None:
    old_ring = KeyRing(OLD_KEY)
    old_blob = old_ring.seal(b"written before the rotation", *BINDING)
    rotated = KeyRing(KEY, accepted=[OLD_KEY])
    assert rotated.open(old_blob, *BINDING, what="the blob") == b"written before the rotation"
    new_blob = rotated.seal(b"written after", *BINDING)
    assert new_blob[len(MAGIC) : len(MAGIC) + KEY_ID_BYTES].hex() == key_id(KEY)
    assert KeyRing(KEY).open(new_blob, *BINDING, what="the blob") == b"written after"
    # A process that still runs the old key alone cannot read what the rotated ones write ...
    with pytest.raises(UnknownSigningKeyError):
        old_ring.open(new_blob, *BINDING, what="the blob")
    # ... and once the old key is dropped from `accepted`, its blobs are refused.
    with pytest.raises(UnknownSigningKeyError):
        KeyRing(KEY).open(old_blob, *BINDING, what="the blob")
    # An old key still refuses a blob moved elsewhere.
    refused(rotated, old_blob, "result", RUN, "a1")


def test_ring_ids_list_the_current_key_first() -> None:
    ring = KeyRing(KEY, [OTHER_KEY, OLD_KEY, KEY])
    assert ring.ids[0] == key_id(KEY)
    assert sorted(ring.ids) == sorted({key_id(KEY), key_id(OLD_KEY), key_id(OTHER_KEY)})
    assert len(ring.ids) == 3
    assert ring.accepts(key_id(OLD_KEY))
    assert not ring.accepts(key_id(b"never configured"))
    assert not ring.accepts("not hex")


def test_an_empty_signing_key_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        KeyRing(b"")


def test_repr_never_shows_a_key() -> None:
    ring = KeyRing(b"super-secret-current", [b"super-secret-older"])
    for text in (repr(ring), str(ring)):
        assert "super-secret" not in text
        assert key_id(b"super-secret-current") in text
        assert key_id(b"super-secret-older") in text


def test_refusals_never_show_a_key() -> None:
    ring = KeyRing(b"super-secret-current", [b"super-secret-older"])
    errors = [
        refused(ring, ring.seal(b"x", *BINDING), "result", RUN, "a1"),
        refused(ring, b"garbage", *BINDING),
    ]
    with pytest.raises(UnknownSigningKeyError) as info:
        ring.open(KeyRing(b"super-secret-foreign").seal(b"x", *BINDING), *BINDING, what="the blob")
    errors.append(info.value)
    for error in errors:
        assert "super-secret" not in str(error)
        assert "super-secret" not in repr(vars(error))


# --- MACs over several parts (what a message carries) -----------------------------------------------------------


def test_mac_round_trip_and_binding() -> None:
    kid, digest = RING.mac("message", "envelope text", b"inputs")
    assert kid == RING.current_id
    assert len(digest) == DIGEST_BYTES
    RING.check_mac(kid, digest, "message", "envelope text", b"inputs", what="message")
    for parts in (("envelope text", b"inputs2"), ("envelope text2", b"inputs"), ("envelope textinputs",)):
        with pytest.raises(UnsafePayloadError) as info:
            RING.check_mac(kid, digest, "message", *parts, what="message")
        assert type(info.value) is UnsafePayloadError
    with pytest.raises(UnsafePayloadError):
        RING.check_mac(kid, digest, "other purpose", "envelope text", b"inputs", what="message")


def test_text_and_its_utf8_bytes_are_the_same_part() -> None:
    # Text is MACed as UTF-8, so a message re-encoded in transit still checks out.
    kid, digest = RING.mac("message", "caf\u00e9")
    RING.check_mac(kid, digest, "message", "caf\u00e9".encode(), what="message")


@pytest.mark.parametrize("kid", [key_id(OTHER_KEY), "zzzzzzzz", ""])
def test_check_mac_with_an_unknown_key_id_names_it(kid: str) -> None:
    _, digest = RING.mac("message", "text")
    with pytest.raises(UnknownSigningKeyError) as info:
        RING.check_mac(kid, digest, "message", "text", what="message")
    assert info.value.key_id == kid
    assert info.value.accepted_ids == RING.ids


# --- rings from configured secrets -------------------------------------------------------------------------------


def test_keyring_from_secrets_uses_the_configured_keys() -> None:
    ring = keyring_from_secrets("s3cret", ["old-1", "", "old-2"])
    assert ring.current == b"s3cret"
    assert ring.ids == (key_id(b"s3cret"), *sorted([key_id(b"old-1"), key_id(b"old-2")]))
    assert ring.open(KeyRing(b"old-2").seal(b"x", *BINDING), *BINDING, what="the blob") == b"x"


@pytest.mark.parametrize("secret", [None, ""])
def test_without_a_secret_the_development_key_signs_with_one_warning(
    secret: str | None, system_log: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_signing, "_warned_development_key", False)
    ring = keyring_from_secrets(secret, ["old"])
    assert ring.current == DEVELOPMENT_KEY
    assert ring.accepts(key_id(b"old"))
    keyring_from_secrets(secret)
    warnings = [r for r in system_log.records if "development key" in r.getMessage()]
    assert len(warnings) == 1
    assert "FLYTE_CELERY_SECURITY_SIGNING_KEY" in warnings[0].getMessage()


# --- outcomes ---------------------------------------------------------------------------------------------------


def round_trip(outcome: Outcome, what: str = "task 'env.t'") -> Outcome:
    return decode_outcome(RING, encode_outcome(RING, outcome, RUN, ACTION, what), RUN, ACTION)


@pytest.mark.parametrize("value", [None, 0, "text", {"nested": [1, 2.5, (3, None)]}, b"\x00\xff"])
def test_value_round_trips(value: Any) -> None:
    outcome = round_trip(Outcome(value=value))
    assert outcome.error is None
    assert outcome.value == value
    assert outcome.unwrap() == value


def test_user_error_keeps_code_traceback_and_context() -> None:
    error = RuntimeUserError("ValueError", "bad input", "worker-7", traceback_text="Traceback ...\nValueError")
    error.with_context(run_name="r1", action_name="abc", task_name="env.t")
    outcome = round_trip(Outcome(error=error))
    got = outcome.error
    assert type(got) is RuntimeUserError
    assert (got.code, got.kind, got.worker, str(got)) == ("ValueError", "user", "worker-7", "bad input")
    assert got.traceback_text == "Traceback ...\nValueError"
    assert (got.run_name, got.action_name, got.task_name) == ("r1", "abc", "env.t")
    with pytest.raises(RuntimeUserError, match="bad input"):
        outcome.unwrap()


@pytest.mark.parametrize(
    "error",
    [
        MaxRuntimeExceededError("took too long"),
        CustomError.from_exception(KeyError("k")),
        RuntimeSystemError("Boom", "platform failed"),
    ],
)
def test_error_subclasses_survive_with_their_type(error: BaseRuntimeError) -> None:
    got = round_trip(Outcome(error=error)).error
    assert type(got) is type(error)
    assert got is not None
    assert (got.code, got.kind, str(got)) == (error.code, error.kind, str(error))
    assert got.traceback_text == error.traceback_text


@pytest.mark.parametrize("make", [_numbers, threading.Lock], ids=["generator", "lock"])
def test_unpicklable_value_becomes_stored_user_error(make: Any) -> None:
    blob = encode_outcome(RING, Outcome(value=make()), RUN, ACTION, "task 'env.t'")
    outcome = decode_outcome(RING, blob, RUN, ACTION)
    assert isinstance(outcome.error, RuntimeUserError)
    assert outcome.error.code == UNSERIALIZABLE_CODE
    assert "task 'env.t'" in str(outcome.error)
    with pytest.raises(RuntimeUserError):
        outcome.unwrap()


def test_unpicklable_error_becomes_system_error_with_its_type_name() -> None:
    error = RuntimeUserError("Locked", "holds a lock")
    error.lock = threading.Lock()  # type: ignore[attr-defined]
    outcome = round_trip(Outcome(error=error))
    assert isinstance(outcome.error, RuntimeSystemError)
    assert outcome.error.code == "RuntimeUserError"
    assert "holds a lock" in str(outcome.error)


@pytest.mark.parametrize(
    ("run", "action"), [(RUN, "a1"), ("run-2", ACTION), ("run-2", "a1")], ids=["action", "run", "both"]
)
def test_outcome_decoded_for_another_action_is_refused(run: str, action: str) -> None:
    blob = encode_outcome(RING, Outcome(value=1), RUN, ACTION, "t")
    with pytest.raises(UnsafePayloadError) as info:
        decode_outcome(RING, blob, run, action)
    assert type(info.value) is UnsafePayloadError
    assert f"result of action {run}/{action}" in str(info.value)


def test_decode_refuses_an_unknown_key_and_tampering() -> None:
    blob = encode_outcome(RING, Outcome(value=1), RUN, ACTION, "t")
    with pytest.raises(UnknownSigningKeyError):
        decode_outcome(KeyRing(OTHER_KEY), blob, RUN, ACTION)
    with pytest.raises(UnsafePayloadError):
        decode_outcome(RING, flipped(blob, -1), RUN, ACTION)


def test_decode_refuses_a_blob_sealed_for_another_purpose_at_the_same_place() -> None:
    blob = RING.seal(cloudpickle.dumps(Outcome(value=1)), "cache", RUN, ACTION)
    with pytest.raises(UnsafePayloadError):
        decode_outcome(RING, blob, RUN, ACTION)


def test_decode_with_a_rotated_ring_reads_results_of_the_old_key() -> None:
    blob = encode_outcome(KeyRing(OLD_KEY), Outcome(value="kept"), RUN, ACTION, "t")
    assert decode_outcome(KeyRing(KEY, [OLD_KEY]), blob, RUN, ACTION).unwrap() == "kept"


def test_decode_refuses_a_sealed_non_outcome() -> None:
    blob = RING.seal(cloudpickle.dumps({"value": 1}), RESULT_PURPOSE, RUN, ACTION)
    outcome = decode_outcome(RING, blob, RUN, ACTION)
    assert isinstance(outcome.error, RuntimeSystemError)
    assert outcome.error.code == "BadOutcome"
    assert "holds a dict" in str(outcome.error)


def test_value_that_cannot_be_loaded_becomes_an_explicit_error() -> None:
    blob = encode_outcome(RING, Outcome(value=PicklesButWillNotLoad()), RUN, ACTION, "task 'env.t'")
    outcome = decode_outcome(RING, blob, RUN, ACTION)
    assert isinstance(outcome.error, RuntimeSystemError)
    assert outcome.error.code == "UnloadableResult"
    assert f"{RUN}/{ACTION}" in str(outcome.error)
    assert "this value cannot be rebuilt" in str(outcome.error)
    with pytest.raises(RuntimeSystemError):
        outcome.unwrap()
