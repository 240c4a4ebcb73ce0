"""Sealed Celery messages: one MAC over the envelope's exact text and the inputs, checked before anything is parsed;
a message of the wrong shape is a `MessageDecodeError` naming the field."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from flyte_celery._celery.envelope import HEADER, ActionMessage, Envelope, RunContextMessage, decode_envelope
from flyte_celery._celery.message import (
    MAC_HEADER,
    AuthenticMessage,
    SealedMessage,
    authenticate_message,
    seal_message,
)
from flyte_celery._signing import Authenticated, KeyRing, key_id
from flyte_celery.errors import MessageDecodeError, UnknownSigningKeyError, UnsafePayloadError

KEY = b"unit-message-key"
OLD_KEY = b"unit-message-retired-key"
RING = KeyRing(KEY)
INPUTS = b"\x80\x05pickled inputs\x00\xff"


def envelope(run: str = "run-1", action: str = "a1", **action_fields: Any) -> Envelope:
    return Envelope(
        run=RunContextMessage(name=run, project="p", env_vars={"A": "1"}),
        action=ActionMessage(name=action, parent="a0", task="env.t", bundle="f" * 32, queue="q", **action_fields),
    )


def sealed(ring: KeyRing = RING, inputs: bytes = INPUTS, **changes: Any) -> SealedMessage:
    return seal_message(ring, envelope(**changes), inputs)


def authenticate(headers: dict[str, Any], args: Any, ring: KeyRing = RING) -> AuthenticMessage:
    return authenticate_message(ring, headers, args)


def forged(headers: dict[str, Any], args: Any) -> UnsafePayloadError:
    """The error a message that fails its MAC is refused with: the plain one, not an unknown key."""
    with pytest.raises(UnsafePayloadError) as info:
        authenticate(headers, args)
    assert type(info.value) is UnsafePayloadError
    assert "message failed authentication" in str(info.value)
    return info.value


def malformed(headers: dict[str, Any], args: Any, field: str) -> MessageDecodeError:
    with pytest.raises(MessageDecodeError) as info:
        authenticate(headers, args)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    return info.value


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- round trip -------------------------------------------------------------------------------------------------


def test_sealed_message_has_our_shape() -> None:
    message = sealed()
    assert set(message.headers) == {HEADER, MAC_HEADER}
    assert message.headers[HEADER] == envelope().encode()
    assert re.fullmatch(r"[0-9a-f]{8}:[0-9a-f]{64}", message.headers[MAC_HEADER])
    assert message.headers[MAC_HEADER].split(":")[0] == RING.current_id == key_id(KEY)
    assert message.args == (b64(INPUTS),)


@pytest.mark.parametrize("inputs", [INPUTS, b"", bytes(range(256)) * 10])
def test_round_trip(inputs: bytes) -> None:
    message = sealed(inputs=inputs)
    authentic = authenticate(message.headers, message.args)
    assert authentic == AuthenticMessage(envelope().encode(), Authenticated(inputs))
    assert decode_envelope(authentic.envelope_text) == envelope()


def test_round_trip_through_celerys_json_serializer() -> None:
    # What a worker receives: headers and args through JSON, the args tuple now a list.
    message = sealed(inputs=INPUTS)
    headers, args = json.loads(json.dumps(message.headers)), json.loads(json.dumps(message.args))
    assert isinstance(args, list)
    assert authenticate(headers, args).inputs == INPUTS


def test_extra_headers_do_not_matter() -> None:
    message = sealed()
    headers = {**message.headers, "id": "run-1-a1", "retries": 0}
    assert authenticate(headers, message.args).inputs == INPUTS


def test_rotated_ring_authenticates_messages_of_the_old_key() -> None:
    message = sealed(ring=KeyRing(OLD_KEY))
    assert authenticate(message.headers, message.args, KeyRing(KEY, [OLD_KEY])).inputs == INPUTS


# --- forged, tampered or moved ----------------------------------------------------------------------------------


def test_changing_any_character_of_the_envelope_text_is_refused() -> None:
    message = sealed()
    text = message.headers[HEADER]
    for index, char in enumerate(text):
        changed = text[:index] + ("x" if char != "x" else "y") + text[index + 1 :]
        forged({**message.headers, HEADER: changed}, message.args)


def test_dropping_or_adding_a_character_of_the_envelope_text_is_refused() -> None:
    message = sealed()
    text = message.headers[HEADER]
    forged({**message.headers, HEADER: text[:-1]}, message.args)
    forged({**message.headers, HEADER: text + " "}, message.args)
    forged({**message.headers, HEADER: json.dumps(json.loads(text))}, message.args)  # same JSON, other text


def test_the_run_name_in_the_header_cannot_be_changed() -> None:
    message = sealed(run="run-1")
    text = message.headers[HEADER]
    moved = text.replace('"name":"run-1"', '"name":"run-2"')
    assert moved != text
    assert decode_envelope(moved).run.name == "run-2"  # still a valid envelope: only the MAC stops it
    forged({**message.headers, HEADER: moved}, message.args)


def test_changing_any_byte_of_the_inputs_is_refused() -> None:
    message = sealed()
    for index in range(len(INPUTS)):
        changed = bytearray(INPUTS)
        changed[index] ^= 0x01
        forged(message.headers, (b64(bytes(changed)),))
    forged(message.headers, (b64(INPUTS[:-1]),))
    forged(message.headers, (b64(INPUTS + b"\x00"),))


def test_the_mac_of_another_message_is_refused() -> None:
    message = sealed(action="a1")
    for other in (sealed(action="a2"), sealed(run="run-2"), sealed(inputs=b"other inputs"), sealed(replay=True)):
        assert other.headers[MAC_HEADER] != message.headers[MAC_HEADER]
        forged({**message.headers, MAC_HEADER: other.headers[MAC_HEADER]}, message.args)


def test_inputs_of_another_message_are_refused() -> None:
    message = sealed(action="a1", inputs=b"inputs of a1")
    other = sealed(action="a2", inputs=b"inputs of a2")
    forged(message.headers, other.args)
    forged({**other.headers, MAC_HEADER: message.headers[MAC_HEADER]}, message.args)


def test_a_message_of_an_unknown_key_names_its_id_and_ours() -> None:
    foreign = KeyRing(b"another fleet's key")
    message = sealed(ring=foreign)
    with pytest.raises(UnknownSigningKeyError) as info:
        authenticate(message.headers, message.args, KeyRing(KEY, [OLD_KEY]))
    assert info.value.key_id == foreign.current_id
    assert info.value.accepted_ids == (key_id(KEY), key_id(OLD_KEY))
    assert foreign.current_id in str(info.value)


def test_a_message_is_authenticated_before_its_envelope_is_parsed() -> None:
    # A forged message with an envelope that would not even parse is refused as forged, not as malformed ...
    message = sealed()
    forged({**message.headers, HEADER: "not json at all"}, message.args)
    # ... and an authentic one is handed over as text, for the caller to decode.
    kid, digest = RING.mac("message", "not json at all", INPUTS)
    headers = {HEADER: "not json at all", MAC_HEADER: f"{kid}:{digest.hex()}"}
    assert authenticate(headers, (b64(INPUTS),)).envelope_text == "not json at all"


# --- not our shape ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, b"{}", {"v": 2}, 42], ids=["missing", "bytes", "dict", "int"])
def test_an_envelope_header_that_is_not_text_is_malformed(value: object) -> None:
    message = sealed()
    headers = {**message.headers, HEADER: value}
    if value is None:
        del headers[HEADER]
    malformed(headers, message.args, HEADER)


@pytest.mark.parametrize(
    "mac",
    [
        None,
        b"abcd0123:" + b"0" * 64,
        42,
        "",
        "no separator",
        "abcd0123" + "0" * 64,
        "abcd0123:" + "0" * 63,
        "abcd0123:" + "0" * 65,
        "abcd012:" + "0" * 64,
        "abcd01234:" + "0" * 64,
        "abcd0123:" + "0" * 32 + ":" + "0" * 31,
        "ghijklmn:" + "0" * 64,
        "abcd0123:" + "z" * 64,
    ],
    ids=[
        "missing",
        "bytes",
        "int",
        "empty",
        "no-separator",
        "no-colon",
        "short-digest",
        "long-digest",
        "short-key-id",
        "long-key-id",
        "two-colons",
        "key-id-not-hex",
        "digest-not-hex",
    ],
)
def test_a_malformed_mac_header_is_malformed(mac: object) -> None:
    message = sealed()
    headers = {**message.headers, MAC_HEADER: mac}
    if mac is None:
        del headers[MAC_HEADER]
    malformed(headers, message.args, MAC_HEADER)


def test_a_key_id_with_whitespace_is_malformed_not_an_unknown_key() -> None:
    # "ab cd ef" is eight characters that `bytes.fromhex` reads (it skips whitespace), but not eight hex digits: the
    # header is malformed (dead-lettered), not signed with some key this worker lacks (requeued for others).
    message = sealed()
    digest = message.headers[MAC_HEADER].split(":")[1]
    malformed({**message.headers, MAC_HEADER: f"ab cd ef:{digest}"}, message.args, MAC_HEADER)


@pytest.mark.parametrize(
    "args",
    [(), (b64(INPUTS), b64(INPUTS)), [b64(INPUTS), {}], (INPUTS,), (42,), (None,), ({"inputs": b64(INPUTS)},)],
    ids=["none", "two", "two-list", "bytes", "int", "null", "dict"],
)
def test_anything_but_one_text_argument_is_malformed(args: Any) -> None:
    message = sealed()
    malformed(message.headers, args, "args")


@pytest.mark.parametrize(
    "arg",
    ["not base64!", "YWJjZA=", "YW=Jj", "YWJ", b64(INPUTS) + "\n", " " + b64(INPUTS), "\u00e9" + b64(INPUTS)],
    ids=["punctuation", "bad-padding", "padding-inside", "unpadded", "newline", "leading-space", "non-ascii"],
)
def test_inputs_that_are_not_base64_are_malformed(arg: str) -> None:
    message = sealed()
    malformed(message.headers, (arg,), "args[0]")
