"""Which keys a process seals and verifies with: the fleet's configured keys, or a machine-local key for local mode."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Final

from flyte_celery._config_model import Settings
from flyte_celery._signing import KeyRing, keyring_from_secrets

LOCAL_KEY_FILE_NAME: Final = "cache.key"
LOCAL_KEY_BYTES: Final = 32


def fleet_keyring(settings: Settings) -> KeyRing:
    """The keys shared by a fleet's clients and workers: `security.signing_key` signs, it and `accepted_keys` verify."""
    security = settings.security
    current = security.signing_key.get_secret_value() if security.signing_key else None
    return keyring_from_secrets(current, [key.get_secret_value() for key in security.accepted_keys])


def local_keyring(settings: Settings) -> KeyRing:
    """The keys of the local cache: the fleet's when configured, else a random key kept beside the cache file
    (readable by its owner only), so an entry written by anyone else, or copied from another machine, is refused."""
    if settings.security.signing_key:
        return fleet_keyring(settings)
    return KeyRing(_local_key(settings.local_cache_path_resolved().with_name(LOCAL_KEY_FILE_NAME)))


def _local_key(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole under a private name, then linked into place: a process racing this one either links first or
    # reads a complete key, never a half-written one.
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(LOCAL_KEY_BYTES))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
    finally:
        draft.unlink(missing_ok=True)
    return path.read_bytes()
