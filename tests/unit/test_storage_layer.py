"""The storage layer without a network: URLs, settings turned into s3fs options, the filesystem cache, how
failures are classified into `StorageError`s, missing extras, and local paths (the S3 contract runs against a real
server in `tests/integration/test_storage_contract.py`)."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ReadTimeoutError

from flyte_celery import _storage as storage
from flyte_celery._config_loader import load_settings
from flyte_celery._config_model import Settings, StorageSettings
from flyte_celery._storage import StorageError
from flyte_celery._storage.errors import classify, storage_error
from flyte_celery._storage.filesystems import S3FS_ATTEMPTS
from flyte_celery.errors import RuntimeSystemError


def s3_settings(**values: object) -> Settings:
    return Settings(storage=StorageSettings.model_validate(values))


def client_error(code: str, operation: str = "PutObject") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} happened"}}, operation)


# --- URLs ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "parts", "joined"),
    [
        ("s3://b/p", ("a", "c.txt"), "s3://b/p/a/c.txt"),
        ("s3://b/p/", ("/a/", "/c.txt"), "s3://b/p/a/c.txt"),
        ("s3://b", ("a/b",), "s3://b/a/b"),
        ("s3://", ("b", "k"), "s3://b/k"),
        ("/tmp/x", ("y",), "/tmp/x/y"),
        ("/", ("y",), "/y"),
        ("", ("a", "b"), "a/b"),
        ("file:///tmp/x", ("", "y"), "file:///tmp/x/y"),
        ("s3://b/p", (), "s3://b/p"),
    ],
)
def test_join(base: str, parts: tuple[str, ...], joined: str) -> None:
    assert storage.join(base, *parts) == joined


def test_local_and_remote_urls() -> None:
    assert storage.is_local("/tmp/x")
    assert storage.is_local("relative/x")
    assert storage.is_local("file:///tmp/x")
    assert not storage.is_local("s3://b/k")
    assert not storage.is_local("gs://b/k")
    assert storage.protocol_of("s3a://b/k") == "s3a"


# --- settings ------------------------------------------------------------------------------------------------------


def test_storage_settings_come_from_environment_variables() -> None:
    settings = load_settings(
        environ={
            "FLYTE_CELERY_STORAGE_ENDPOINT_URL": "http://127.0.0.1:9000",
            "FLYTE_CELERY_STORAGE_ACCESS_KEY_ID": "key #1",
            "FLYTE_CELERY_STORAGE_SECRET_ACCESS_KEY": "0x1F",
            "FLYTE_CELERY_STORAGE_ANONYMOUS": "true",
            "FLYTE_CELERY_STORAGE_CONNECT_TIMEOUT_S": "1.5",
            "FLYTE_CELERY_STORAGE_MAX_ATTEMPTS": "4",
        },
        discover=False,
    )
    stored = settings.storage
    assert stored.endpoint_url == "http://127.0.0.1:9000"
    assert stored.access_key_id is not None
    assert stored.access_key_id.get_secret_value() == "key #1"  # secrets are taken verbatim, not as YAML
    assert stored.secret_access_key is not None
    assert stored.secret_access_key.get_secret_value() == "0x1F"
    assert (stored.anonymous, stored.connect_timeout_s, stored.max_attempts) == (True, 1.5, 4)
    assert "0x1F" not in repr(settings)


def test_a_flyte_storage_section_is_accepted_and_ignored(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "storage:\n  type: minio\n  container: my-bucket\n  connection:\n    endpoint: http://localhost:30002\n"
        "  region: eu-west-1\n"
    )
    assert load_settings(config, environ={}).storage == StorageSettings(region="eu-west-1")


# --- filesystems ---------------------------------------------------------------------------------------------------


def test_explicit_settings_become_s3fs_options() -> None:
    fs, path = storage.filesystem(
        "s3://bucket/key.txt",
        s3_settings(
            endpoint_url="http://127.0.0.1:1",
            access_key_id="AK",
            secret_access_key="SK",
            region="eu-west-1",
            connect_timeout_s=2,
            read_timeout_s=7,
            max_attempts=5,
        ),
    )
    assert path == "bucket/key.txt"
    assert (fs.endpoint_url, fs.key, fs.secret, fs.anon) == ("http://127.0.0.1:1", "AK", "SK", False)
    assert fs.client_kwargs == {"region_name": "eu-west-1"}
    assert fs.config_kwargs == {
        "connect_timeout": 2.0,
        "read_timeout": 7.0,
        "retries": {"max_attempts": 5, "mode": "standard"},
    }
    assert fs.retries == S3FS_ATTEMPTS
    assert not fs.dircache.use_listings_cache  # other processes write too: never list from a stale cache


def test_unset_settings_leave_botocore_to_read_the_environment() -> None:
    fs, _ = storage.filesystem("s3://bucket/key.txt", Settings())
    assert (fs.endpoint_url, fs.key, fs.secret, fs.client_kwargs) == (None, None, None, {})


def test_filesystems_are_cached_per_options_and_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    first, _ = storage.filesystem("s3://a/k", s3_settings(region="r1"))
    assert storage.filesystem("s3://other/k", s3_settings(region="r1"))[0] is first
    assert storage.filesystem("s3://a/k", s3_settings(region="r2"))[0] is not first
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:2")
    assert storage.filesystem("s3://a/k", s3_settings(region="r1"))[0] is not first


def test_local_paths_are_made_absolute() -> None:
    _, path = storage.filesystem("relative/dir/x.txt", Settings())
    assert path == str(Path("relative/dir/x.txt").absolute())
    _, path = storage.filesystem("file:///tmp/x.txt", Settings())
    assert path == "/tmp/x.txt"


def test_a_protocol_without_its_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gcsfs", None)  # as if gcsfs were not installed, even where it is
    with pytest.raises(StorageError) as caught:
        storage.put_bytes_sync("gs://bucket/x.txt", b"x")
    assert caught.value.reason == "missing_extra"
    assert "gs://bucket/x.txt" in str(caught.value)
    assert "pip install 'flyte-celery[gcs]'" in str(caught.value)


def test_an_unknown_protocol_is_named() -> None:
    with pytest.raises(StorageError) as caught:
        storage.exists_sync("nosuchprotocol://bucket/x")
    assert caught.value.reason == "unknown_protocol"
    assert "nosuchprotocol" in str(caught.value)


# --- errors --------------------------------------------------------------------------------------------------------


def test_storage_error_names_the_url_without_its_credentials_and_pickles() -> None:
    error = StorageError("ftp://user:hunter2@host/path?token=abc", "permission", "denied", "read")
    assert isinstance(error, RuntimeSystemError)
    assert (error.code, error.kind, error.reason, error.action) == ("StorageError", "system", "permission", "read")
    assert "hunter2" not in str(error)
    assert "abc" not in str(error)
    assert str(error) == "Cannot read ftp://user:***@host/path?token=***: denied"
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.url, copy.reason) == (StorageError, str(error), error.url, "permission")


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (client_error("NoSuchBucket"), "no_bucket"),
        (client_error("InvalidAccessKeyId"), "credentials"),
        (client_error("SignatureDoesNotMatch"), "credentials"),
        (client_error("AccessDenied"), "permission"),
        (client_error("403", "HeadObject"), "permission"),
        (client_error("NoSuchKey", "GetObject"), "not_found"),
        (NoCredentialsError(), "credentials"),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), "unreachable"),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), "timeout"),
        (FileNotFoundError("bucket/key"), "not_found"),
        (PermissionError("no"), "permission"),
        (ConnectionRefusedError(111, "refused"), "unreachable"),
        (ValueError("odd"), "other"),
    ],
)
def test_failures_are_classified(error: Exception, reason: str) -> None:
    assert classify(error)[0] == reason


def test_the_cause_decides_when_s3fs_translated_the_error() -> None:
    # s3fs turns botocore's NoSuchBucket into a plain FileNotFoundError whose cause is the original.
    try:
        try:
            raise client_error("NoSuchBucket")
        except ClientError as original:
            raise FileNotFoundError("The specified bucket does not exist") from original
    except FileNotFoundError as translated:
        error = storage_error(translated, "s3://missing/key", "write")
    assert error.reason == "no_bucket"
    assert str(error).startswith("Cannot write s3://missing/key: the bucket does not exist")


def test_missing_credentials_say_where_to_set_them() -> None:
    reason, detail = classify(NoCredentialsError())
    assert reason == "credentials"
    for hint in ("storage.access_key_id", "FLYTE_CELERY_STORAGE_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID", "anonymous"):
        assert hint in detail


# --- local paths ---------------------------------------------------------------------------------------------------


def test_file_urls_create_parents_and_list_as_file_urls(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/a/b/c.txt"
    storage.put_bytes_sync(url, b"abc")
    assert (tmp_path / "a" / "b" / "c.txt").read_bytes() == b"abc"
    assert storage.ls_sync(f"file://{tmp_path}/a/b") == [url]
    assert storage.ls_sync(str(tmp_path / "a" / "b")) == [str(tmp_path / "a" / "b" / "c.txt")]
