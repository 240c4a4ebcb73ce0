"""HMAC-signed blobs: every pickle that crosses Redis or the broker is signed, and unsigned ones are refused."""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from flyte_celery._logging import system_logger
from flyte_celery.errors import UnsafePayloadError

DIGEST_BYTES: Final = 32
DEVELOPMENT_KEY: Final = b"flyte-celery-development-key-do-not-use-in-production"
_warned = False


def signing_key(configured: str | None) -> bytes:
    """The key to sign with: the configured one, else a fixed development key (with one warning per process)."""
    global _warned
    if configured:
        return configured.encode("utf-8")
    if not _warned:
        system_logger.warning(
            "security.signing_key is not set: payloads are signed with the public development key; "
            "anyone who can write to Redis can run code on the workers. Set FLYTE_CELERY_SECURITY_SIGNING_KEY."
        )
        _warned = True
    return DEVELOPMENT_KEY


def sign(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest() + data


def verify(key: bytes, blob: bytes, what: str) -> bytes:
    """The data inside `blob` if its signature is valid.

    Raises:
        UnsafePayloadError: Naming `what`, if the blob is too short or its signature does not match.
    """
    if len(blob) < DIGEST_BYTES:
        raise UnsafePayloadError(f"{what} is not a signed payload ({len(blob)} bytes)")
    digest, data = blob[:DIGEST_BYTES], blob[DIGEST_BYTES:]
    if not hmac.compare_digest(digest, hmac.new(key, data, hashlib.sha256).digest()):
        raise UnsafePayloadError(f"{what} has a bad signature: was it signed with another security.signing_key?")
    return data
