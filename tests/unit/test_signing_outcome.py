"""Signed blobs and stored outcomes: what crosses Redis is verified, and a result is never silently dropped."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import cloudpickle
import pytest

from flyte_celery._celery.outcome import Outcome, decode_outcome, encode_outcome
from flyte_celery._celery.signing import DEVELOPMENT_KEY, DIGEST_BYTES, sign, signing_key, verify
from flyte_celery._values import UNSERIALIZABLE_CODE
from flyte_celery.errors import (
    BaseRuntimeError,
    CustomError,
    MaxRuntimeExceededError,
    RuntimeSystemError,
    RuntimeUserError,
    UnsafePayloadError,
)

KEY = b"unit-test-signing-key"


def _numbers() -> Iterator[int]:
    yield 1


def _refuse_rebuild() -> None:
    raise TypeError("this value cannot be rebuilt")


class PicklesButWillNotLoad:
    """Pickles fine; unpickling it raises (like an exception class whose __init__ needs more arguments)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_refuse_rebuild, ())


# --- signing ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"payload", bytes(range(256)) * 40])
def test_sign_verify_round_trip(data: bytes) -> None:
    blob = sign(KEY, data)
    assert len(blob) == DIGEST_BYTES + len(data)
    assert verify(KEY, blob, "thing") == data


def test_tampered_data_is_refused() -> None:
    blob = bytearray(sign(KEY, b"cloudpickled bytes"))
    blob[-1] ^= 0x01
    with pytest.raises(UnsafePayloadError, match="inputs of r-a0 has a bad signature"):
        verify(KEY, bytes(blob), "inputs of r-a0")


def test_tampered_digest_is_refused() -> None:
    blob = bytearray(sign(KEY, b"cloudpickled bytes"))
    blob[0] ^= 0x80
    with pytest.raises(UnsafePayloadError):
        verify(KEY, bytes(blob), "blob")


def test_wrong_key_is_refused() -> None:
    blob = sign(KEY, b"data")
    with pytest.raises(UnsafePayloadError, match="bad signature") as info:
        verify(b"another key", blob, "code bundle x")
    assert info.value.code == "UnsafePayloadError"
    assert info.value.kind == "system"


@pytest.mark.parametrize("blob", [b"", b"short", b"x" * (DIGEST_BYTES - 1)])
def test_too_short_blob_is_refused(blob: bytes) -> None:
    with pytest.raises(UnsafePayloadError, match="not a signed payload"):
        verify(KEY, blob, "result of r/a0")


def test_unsigned_pickle_is_refused() -> None:
    with pytest.raises(UnsafePayloadError):
        verify(KEY, cloudpickle.dumps({"a": "dict long enough to pass the length check" * 2}), "inputs")


def test_signing_key_uses_configured_secret_else_development_key() -> None:
    assert signing_key("s3cret") == b"s3cret"
    assert signing_key(None) == DEVELOPMENT_KEY
    assert signing_key("") == DEVELOPMENT_KEY
    assert verify(signing_key("s3cret"), sign(b"s3cret", b"x"), "x") == b"x"


# --- outcomes ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, 0, "text", {"nested": [1, 2.5, (3, None)]}, b"\x00\xff"])
def test_value_round_trips(value: Any) -> None:
    outcome = decode_outcome(KEY, encode_outcome(KEY, Outcome(value=value), "task t"), "result")
    assert outcome.error is None
    assert outcome.value == value
    assert outcome.unwrap() == value


def test_user_error_keeps_code_traceback_and_context() -> None:
    error = RuntimeUserError("ValueError", "bad input", "worker-7", traceback_text="Traceback ...\nValueError")
    error.with_context(run_name="r1", action_name="abc", task_name="env.t")
    outcome = decode_outcome(KEY, encode_outcome(KEY, Outcome(error=error), "task t"), "result")
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
    got = decode_outcome(KEY, encode_outcome(KEY, Outcome(error=error), "task t"), "result").error
    assert type(got) is type(error)
    assert got is not None
    assert (got.code, got.kind, str(got)) == (error.code, error.kind, str(error))
    assert got.traceback_text == error.traceback_text


@pytest.mark.parametrize("make", [_numbers, threading.Lock], ids=["generator", "lock"])
def test_unpicklable_value_becomes_stored_user_error(make: Any) -> None:
    blob = encode_outcome(KEY, Outcome(value=make()), "task 'env.t'")
    outcome = decode_outcome(KEY, blob, "result")
    assert isinstance(outcome.error, RuntimeUserError)
    assert outcome.error.code == UNSERIALIZABLE_CODE
    assert "task 'env.t'" in str(outcome.error)
    with pytest.raises(RuntimeUserError):
        outcome.unwrap()


def test_unpicklable_error_becomes_system_error_with_its_type_name() -> None:
    error = RuntimeUserError("Locked", "holds a lock")
    error.lock = threading.Lock()  # type: ignore[attr-defined]
    outcome = decode_outcome(KEY, encode_outcome(KEY, Outcome(error=error), "task 'env.t'"), "result")
    assert isinstance(outcome.error, RuntimeSystemError)
    assert outcome.error.code == "RuntimeUserError"
    assert "holds a lock" in str(outcome.error)


def test_decode_refuses_wrong_key_and_tampering() -> None:
    blob = encode_outcome(KEY, Outcome(value=1), "t")
    with pytest.raises(UnsafePayloadError):
        decode_outcome(b"other", blob, "result")
    with pytest.raises(UnsafePayloadError):
        decode_outcome(KEY, blob[:-1] + bytes([blob[-1] ^ 1]), "result")


def test_decode_refuses_a_signed_non_outcome() -> None:
    blob = sign(KEY, cloudpickle.dumps({"value": 1}))
    with pytest.raises(RuntimeSystemError, match="holds a dict") as info:
        decode_outcome(KEY, blob, "result of r/a0")
    assert info.value.code == "BadOutcome"


def test_value_that_cannot_be_loaded_becomes_an_explicit_error() -> None:
    blob = encode_outcome(KEY, Outcome(value=PicklesButWillNotLoad()), "task 'env.t'")
    try:
        outcome = decode_outcome(KEY, blob, "result of r/a0")
    except BaseRuntimeError:
        return
    assert isinstance(outcome.error, BaseRuntimeError)
