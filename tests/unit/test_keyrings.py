"""Which keys a process seals with: the fleet's configured keys, or a private key kept beside the local cache."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from flyte_celery import _signing
from flyte_celery._config_model import Settings
from flyte_celery._keyrings import LOCAL_KEY_BYTES, LOCAL_KEY_FILE_NAME, fleet_keyring, local_keyring
from flyte_celery._signing import DEVELOPMENT_KEY, key_id


def local_settings(cache_file: Path, **security: object) -> Settings:
    return Settings(local={"cache_path": str(cache_file)}, security=security)  # type: ignore[arg-type]


def test_local_keyring_creates_a_private_key_beside_the_cache_file(tmp_path: Path) -> None:
    cache_file = tmp_path / "nested" / "cache.db"
    ring = local_keyring(local_settings(cache_file))
    key_file = cache_file.with_name(LOCAL_KEY_FILE_NAME)
    assert key_file == tmp_path / "nested" / "cache.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_bytes()
    assert len(key) == LOCAL_KEY_BYTES
    assert ring.current == key
    assert key != DEVELOPMENT_KEY
    assert sorted(p.name for p in key_file.parent.iterdir()) == [LOCAL_KEY_FILE_NAME]  # no draft left behind


def test_local_keyring_returns_the_same_key_on_a_second_call(tmp_path: Path) -> None:
    settings = local_settings(tmp_path / "cache.db")
    first, second = local_keyring(settings), local_keyring(settings)
    assert first.current == second.current
    assert first.current_id == second.current_id
    assert second.open(first.seal(b"x", "cache", "k"), "cache", "k", what="entry") == b"x"


def test_local_keyring_uses_an_existing_key_file(tmp_path: Path) -> None:
    (tmp_path / LOCAL_KEY_FILE_NAME).write_bytes(b"a key written earlier")
    assert local_keyring(local_settings(tmp_path / "cache.db")).current == b"a key written earlier"


def test_each_cache_file_location_has_its_own_key(tmp_path: Path) -> None:
    one = local_keyring(local_settings(tmp_path / "one" / "cache.db"))
    two = local_keyring(local_settings(tmp_path / "two" / "cache.db"))
    assert one.current_id != two.current_id


def test_local_keyring_uses_the_configured_signing_key(tmp_path: Path) -> None:
    settings = local_settings(tmp_path / "cache.db", signing_key="fleet-key", accepted_keys=["retired-key"])
    ring = local_keyring(settings)
    assert ring.current == b"fleet-key"
    assert ring.ids == (key_id(b"fleet-key"), key_id(b"retired-key"))
    assert not (tmp_path / LOCAL_KEY_FILE_NAME).exists()


def test_fleet_keyring_uses_the_configured_keys() -> None:
    ring = fleet_keyring(Settings(security={"signing_key": "fleet-key", "accepted_keys": ["old-1", "old-2"]}))  # type: ignore[arg-type]
    assert ring.current == b"fleet-key"
    assert ring.ids == (key_id(b"fleet-key"), *sorted([key_id(b"old-1"), key_id(b"old-2")]))


def test_fleet_keyring_without_a_key_is_the_development_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_signing, "_warned_development_key", True)  # the warning is tested with keyring_from_secrets
    ring = fleet_keyring(Settings(security={"accepted_keys": ["old-1"]}))  # type: ignore[arg-type]
    assert ring.current == DEVELOPMENT_KEY
    assert ring.accepts(key_id(b"old-1"))
