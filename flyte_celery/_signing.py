"""Authenticated bytes: the one trust rule of flyte-celery.

Nothing read back from Redis, the broker, a cache or storage is unpickled unless it is authenticated for exactly
where it was read. A sealed blob carries the id of the key that signed it and an HMAC-SHA256 over its bytes *and*
its binding: what it is (`purpose`) and where it belongs (run, action, cache key, ...). A valid blob moved to another
key, run or action fails its check, and `open` is the only way to get `Authenticated` bytes, the only bytes the
loaders in `_values` accept (mypy holds callers to it).

Keys rotate through a `KeyRing`: the current key signs; it and every accepted older key verify. Key ids are a short
hash of the key (not secret), so a refusal can say which key a blob needs and which ones this process has.

Layout of a sealed blob: ``MAGIC (4) | key id (4) | HMAC (32) | data``.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable, Sequence
from typing import Final, NewType

from flyte_celery._logging import system_logger
from flyte_celery.errors import UnknownSigningKeyError, UnsafePayloadError

Authenticated = NewType("Authenticated", bytes)

MAGIC: Final = b"fcs2"
KEY_ID_BYTES: Final = 4
DIGEST_BYTES: Final = 32
SEAL_HEADER_BYTES: Final = len(MAGIC) + KEY_ID_BYTES + DIGEST_BYTES
DEVELOPMENT_KEY: Final = b"flyte-celery-development-key-do-not-use-in-production"
_LENGTH: Final = struct.Struct("!Q")
_KEY_ID_DOMAIN: Final = b"flyte-celery key id\0"
_warned_development_key = False


def key_id(key: bytes) -> str:
    """The public id of `key`: 8 hex digits of a hash of it."""
    return hashlib.sha256(_KEY_ID_DOMAIN + key).digest()[:KEY_ID_BYTES].hex()


class KeyRing:
    """The key that signs and the keys that verify.

    Args:
        current: Signs everything this process writes (and verifies).
        accepted: Older keys that still verify, while blobs signed with them may be around.
    """

    def __init__(self, current: bytes, accepted: Sequence[bytes] = ()) -> None:
        if not current:
            raise ValueError("a signing key cannot be empty")
        self.current = current
        self.current_id = key_id(current)
        self._by_id: dict[bytes, bytes] = {bytes.fromhex(key_id(k)): k for k in (*accepted, current) if k}

    @property
    def ids(self) -> tuple[str, ...]:
        """The ids of every key that verifies, the current one first."""
        return (self.current_id, *sorted(k.hex() for k in self._by_id if k.hex() != self.current_id))

    def accepts(self, kid: str) -> bool:
        try:
            return bytes.fromhex(kid) in self._by_id
        except ValueError:
            return False

    def mac(self, purpose: str, *parts: bytes | str) -> tuple[str, bytes]:
        """(current key id, HMAC of `parts` for `purpose`) under the current key."""
        return self.current_id, _mac(self.current, purpose, parts)

    def check_mac(self, kid: str, digest: bytes, purpose: str, *parts: bytes | str, what: str) -> None:
        """Check a MAC made by `mac`.

        Raises:
            UnknownSigningKeyError: If `kid` is not a key of this ring.
            UnsafePayloadError: If the MAC does not match (forged, tampered with, or moved elsewhere).
        """
        key = self._key(kid, what)
        if not hmac.compare_digest(digest, _mac(key, purpose, parts)):
            raise UnsafePayloadError(
                f"{what} failed authentication: it was altered, forged, or moved from where it was signed"
            )

    def seal(self, data: bytes, purpose: str, *binding: str) -> bytes:
        """`data` sealed for `purpose` at `binding` (run, action, key name, ...)."""
        digest = _mac(self.current, purpose, (*binding, data))
        return MAGIC + bytes.fromhex(self.current_id) + digest + data

    def open(self, blob: bytes, purpose: str, *binding: str, what: str) -> Authenticated:
        """The data inside `blob`, if it was sealed by a key of this ring for exactly `purpose` and `binding`.

        Raises:
            UnknownSigningKeyError: If it was sealed with a key this ring does not have.
            UnsafePayloadError: Naming `what`, if it is not a sealed blob or its MAC does not match.
        """
        if len(blob) < SEAL_HEADER_BYTES or blob[: len(MAGIC)] != MAGIC:
            raise UnsafePayloadError(f"{what} is not a sealed payload ({len(blob)} bytes)")
        kid = blob[len(MAGIC) : len(MAGIC) + KEY_ID_BYTES].hex()
        digest = blob[len(MAGIC) + KEY_ID_BYTES : SEAL_HEADER_BYTES]
        data = blob[SEAL_HEADER_BYTES:]
        self.check_mac(kid, digest, purpose, *binding, data, what=what)
        return Authenticated(data)

    def _key(self, kid: str, what: str) -> bytes:
        try:
            key = self._by_id.get(bytes.fromhex(kid))
        except ValueError:
            key = None
        if key is None:
            raise UnknownSigningKeyError(kid, self.ids, what)
        return key

    def __repr__(self) -> str:
        return f"KeyRing(ids={self.ids!r})"  # never the keys


def _mac(key: bytes, purpose: str, parts: Iterable[bytes | str]) -> bytes:
    # Every part is length-prefixed, so no two different bindings can produce the same input.
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in (purpose, *parts):
        raw = part.encode("utf-8") if isinstance(part, str) else part
        mac.update(_LENGTH.pack(len(raw)))
        mac.update(raw)
    return mac.digest()


def keyring_from_secrets(current: str | None, accepted: Sequence[str] = ()) -> KeyRing:
    """The ring for configured secrets; without a current one, the public development key (with one warning)."""
    global _warned_development_key
    if current:
        return KeyRing(current.encode("utf-8"), [a.encode("utf-8") for a in accepted if a])
    if not _warned_development_key:
        system_logger.warning(
            "security.signing_key is not set: payloads are signed with the public development key; "
            "anyone who can write to Redis can run code on the workers. Set FLYTE_CELERY_SECURITY_SIGNING_KEY."
        )
        _warned_development_key = True
    return KeyRing(DEVELOPMENT_KEY, [a.encode("utf-8") for a in accepted if a])
