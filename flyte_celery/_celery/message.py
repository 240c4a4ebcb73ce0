"""Our Celery messages: the envelope's JSON text in the `flyte_celery` header, the inputs' pickle (base64) as the
one argument, and one MAC over both in the `flyte_celery_mac` header (`<key id>:<hex digest>`).

The MAC covers the envelope's exact text (run, action, parent, bundle, the whole run context, queue, ...) and the
input bytes, so signed inputs replayed under another run, action or context fail the check. Authentication comes
before anything else is parsed; only authenticated inputs can be unpickled.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from flyte_celery._celery.envelope import HEADER, Envelope
from flyte_celery._signing import DIGEST_BYTES, KEY_ID_BYTES, Authenticated, KeyRing
from flyte_celery.errors import MessageDecodeError

MAC_HEADER: Final = "flyte_celery_mac"
MESSAGE_PURPOSE: Final = "message"
_HEX: Final = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True)
class SealedMessage:
    """What to publish: Celery headers and arguments."""

    headers: dict[str, str]
    args: tuple[str]


@dataclass(frozen=True)
class AuthenticMessage:
    """A message whose MAC checked out: its envelope's text (not yet decoded) and its inputs' bytes."""

    envelope_text: str
    inputs: Authenticated


def seal_message(keys: KeyRing, envelope: Envelope, inputs: bytes) -> SealedMessage:
    text = envelope.encode()
    kid, digest = keys.mac(MESSAGE_PURPOSE, text, inputs)
    return SealedMessage(
        {HEADER: text, MAC_HEADER: f"{kid}:{digest.hex()}"}, (base64.b64encode(inputs).decode("ascii"),)
    )


def authenticate_message(keys: KeyRing, headers: Mapping[str, Any], args: Sequence[Any]) -> AuthenticMessage:
    """Check a received message's MAC over its envelope text and inputs.

    Raises:
        MessageDecodeError: If the message does not have our shape (naming the field).
        UnknownSigningKeyError: If it was signed with a key this process does not have.
        UnsafePayloadError: If its MAC does not match.
    """
    text = headers.get(HEADER)
    if not isinstance(text, str):
        raise MessageDecodeError(f"missing or not text ({type(text).__name__})", field=HEADER)
    kid, digest = _parse_mac(headers.get(MAC_HEADER))
    if len(args) != 1 or not isinstance(args[0], str):
        raise MessageDecodeError("expected exactly one argument, a base64 string", field="args")
    try:
        inputs = base64.b64decode(args[0], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MessageDecodeError(f"inputs are not base64: {exc}", field="args[0]") from None
    keys.check_mac(kid, digest, MESSAGE_PURPOSE, text, inputs, what="message")
    return AuthenticMessage(text, Authenticated(inputs))


def _parse_mac(value: object) -> tuple[str, bytes]:
    if not isinstance(value, str) or value.count(":") != 1:
        raise MessageDecodeError("missing or not '<key id>:<hex digest>'", field=MAC_HEADER)
    kid, _, hex_digest = value.partition(":")
    if not (_HEX.fullmatch(kid) and len(kid) == 2 * KEY_ID_BYTES):
        raise MessageDecodeError(f"the key id is not {2 * KEY_ID_BYTES} hex digits", field=MAC_HEADER)
    if not (_HEX.fullmatch(hex_digest) and len(hex_digest) == 2 * DIGEST_BYTES):
        raise MessageDecodeError(f"the digest is not {2 * DIGEST_BYTES} hex digits", field=MAC_HEADER)
    return kid, bytes.fromhex(hex_digest)
