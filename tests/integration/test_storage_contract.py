"""The storage contract, run against a local directory and a real S3 server (moto's): one suite, both backends.

Every operation is checked through its blocking form and, where it matters, its async twin; the S3 failure modes
(missing bucket, refused or missing credentials, an endpoint that does not answer) each become a `StorageError`
naming the URL and the cause.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flyte_celery import _storage as storage
from flyte_celery._config_model import Settings, StorageSettings
from flyte_celery._init import current_settings
from flyte_celery._storage import StorageError
from tests._s3 import REGION, AuthS3Server, S3Server, free_port

pytest_plugins = ["tests._s3"]

UNREACHABLE_DEADLINE_S = 10.0


@pytest.fixture(params=["local", "s3"])
def base(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A prefix to write under: a local directory, or a prefix in a fresh bucket of the S3 server."""
    if request.param == "local":
        yield str(tmp_path / "store")
        return
    request.getfixturevalue("s3_env")
    bucket = request.getfixturevalue("s3_bucket")
    yield f"s3://{bucket}/base"


def _tree(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in root.rglob("*") if path.is_file()}


# --- bytes ---------------------------------------------------------------------------------------------------------


def test_bytes_round_trip_creating_parents(base: str) -> None:
    url = storage.join(base, "a/b/c.bin")
    storage.put_bytes_sync(url, b"\x00payload")
    assert storage.get_bytes_sync(url) == b"\x00payload"
    storage.put_bytes_sync(url, b"replaced")
    assert storage.get_bytes_sync(url) == b"replaced"


def test_async_bytes_round_trip(base: str) -> None:
    async def main() -> bytes:
        url = storage.join(base, "async.bin")
        await storage.put_bytes(url, b"async")
        assert await storage.exists(url)
        assert await storage.size(url) == 5
        return await storage.get_bytes(url)

    assert asyncio.run(main()) == b"async"


def test_reading_a_missing_object_names_it(base: str, tmp_path: Path) -> None:
    url = storage.join(base, "missing.bin")
    for operation in (
        lambda: storage.get_bytes_sync(url),
        lambda: storage.size_sync(url),
        lambda: storage.ls_sync(url),
        lambda: storage.get_path_sync(url, tmp_path / "local.bin"),
    ):
        with pytest.raises(StorageError) as caught:
            operation()
        assert caught.value.reason == "not_found"
        assert url in str(caught.value)


# --- exists, size, ls, delete ----------------------------------------------------------------------------------------


def test_exists_for_files_directories_and_missing_paths(base: str) -> None:
    storage.put_bytes_sync(storage.join(base, "dir/file.txt"), b"x")
    assert storage.exists_sync(storage.join(base, "dir/file.txt"))
    assert storage.exists_sync(storage.join(base, "dir"))
    assert not storage.exists_sync(storage.join(base, "dir/other.txt"))
    assert not storage.exists_sync(storage.join(base, "nowhere"))


def test_size(base: str) -> None:
    url = storage.join(base, "sized.bin")
    storage.put_bytes_sync(url, b"12345678")
    assert storage.size_sync(url) == 8


def test_ls_lists_direct_children_spelled_like_the_url(base: str) -> None:
    for name in ("x/one.txt", "x/two.txt", "x/sub/three.txt"):
        storage.put_bytes_sync(storage.join(base, name), name.encode())
    listed = storage.ls_sync(storage.join(base, "x"))
    assert listed == [storage.join(base, "x", name) for name in ("one.txt", "sub", "two.txt")]
    assert asyncio.run(storage.ls(storage.join(base, "x"))) == listed


def test_find_lists_files_at_any_depth(base: str) -> None:
    for name in ("t/a.txt", "t/s/b.txt", "t/s/d/c.txt"):
        storage.put_bytes_sync(storage.join(base, name), b"-")
    assert storage.find_sync(storage.join(base, "t")) == [
        storage.join(base, name) for name in ("t/a.txt", "t/s/b.txt", "t/s/d/c.txt")
    ]
    assert storage.find_sync(storage.join(base, "t"), maxdepth=1) == [storage.join(base, "t/a.txt")]


def test_delete_a_file_a_tree_and_nothing(base: str) -> None:
    storage.put_bytes_sync(storage.join(base, "d/keep.txt"), b"k")
    storage.put_bytes_sync(storage.join(base, "d/gone.txt"), b"g")
    storage.put_bytes_sync(storage.join(base, "d/tree/x.txt"), b"x")
    storage.delete_sync(storage.join(base, "d/gone.txt"))
    assert not storage.exists_sync(storage.join(base, "d/gone.txt"))
    storage.delete_sync(storage.join(base, "d/tree"), recursive=True)
    assert not storage.exists_sync(storage.join(base, "d/tree"))
    assert storage.exists_sync(storage.join(base, "d/keep.txt"))
    storage.delete_sync(storage.join(base, "d/never-was.txt"))  # no error: the end state is what was asked
    asyncio.run(storage.delete(storage.join(base, "d"), recursive=True))
    assert not storage.exists_sync(storage.join(base, "d/keep.txt"))


# --- paths -----------------------------------------------------------------------------------------------------------


def test_put_and_get_one_file(base: str, tmp_path: Path) -> None:
    source = tmp_path / "in" / "data.csv"
    source.parent.mkdir()
    source.write_text("a,b\n1,2\n")
    url = storage.join(base, "up/data.csv")
    storage.put_path_sync(source, url)
    target = tmp_path / "out" / "deep" / "data.csv"
    storage.get_path_sync(url, target)
    assert target.read_text() == "a,b\n1,2\n"


def test_put_and_get_a_tree(base: str, tmp_path: Path) -> None:
    source = tmp_path / "tree"
    for name, text in {"a.txt": "A", "sub/b.txt": "B", "sub/deeper/c.txt": "C"}.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    url = storage.join(base, "trees/t1")
    asyncio.run(storage.put_path(source, url, recursive=True))
    assert storage.find_sync(url) == [storage.join(url, name) for name in ("a.txt", "sub/b.txt", "sub/deeper/c.txt")]
    # Uploading again to the same place lands at the same paths (no `t1/tree/...` nesting on the second copy).
    storage.put_path_sync(source, url, recursive=True)
    assert len(storage.find_sync(url)) == 3
    target = tmp_path / "back"
    asyncio.run(storage.get_path(url, target, recursive=True))
    assert _tree(target) == _tree(source)


def test_uploading_a_missing_local_file_names_it(base: str, tmp_path: Path) -> None:
    with pytest.raises(StorageError) as caught:
        storage.put_path_sync(tmp_path / "absent.txt", storage.join(base, "x"))
    assert caught.value.reason == "not_found"
    assert "absent.txt" in str(caught.value)


def test_downloading_a_missing_tree_names_it(base: str, tmp_path: Path) -> None:
    url = storage.join(base, "no-tree")
    with pytest.raises(StorageError) as caught:
        storage.get_path_sync(url, tmp_path / "t", recursive=True)
    assert caught.value.reason == "not_found"
    assert url in str(caught.value)


# --- S3 failures -----------------------------------------------------------------------------------------------------


def test_a_missing_bucket_is_named(s3_env: S3Server) -> None:
    url = "s3://flyte-celery-no-such-bucket/k.txt"
    for operation in (
        lambda: storage.put_bytes_sync(url, b"x"),
        lambda: storage.get_bytes_sync(url),
        lambda: storage.exists_sync(url),
    ):
        with pytest.raises(StorageError) as caught:
            operation()
        assert caught.value.reason == "no_bucket"
        assert url in str(caught.value)
        assert "bucket does not exist" in str(caught.value)


def _signed_by(server: S3Server, key: str, secret: str) -> Settings:
    return Settings(
        storage=StorageSettings.model_validate(
            {"endpoint_url": server.endpoint, "access_key_id": key, "secret_access_key": secret, "region": REGION}
        )
    )


def test_refused_credentials_are_named(s3_auth_server: AuthS3Server) -> None:
    settings = _signed_by(s3_auth_server, "AKIAUNKNOWNKEY000000", "wrong-secret")
    url = "s3://any-bucket/key.txt"
    with pytest.raises(StorageError) as caught:
        storage.put_bytes_sync(url, b"x", settings=settings)
    assert caught.value.reason == "credentials"
    assert url in str(caught.value)
    assert "InvalidAccessKeyId" in str(caught.value)
    assert "wrong-secret" not in str(caught.value)


def test_permission_denied_is_named(s3_auth_server: AuthS3Server) -> None:
    settings = _signed_by(s3_auth_server, s3_auth_server.powerless_key, s3_auth_server.powerless_secret)
    url = "s3://any-bucket/key.txt"
    for operation in (
        lambda: storage.put_bytes_sync(url, b"x", settings=settings),
        lambda: storage.get_bytes_sync(url, settings=settings),  # a HEAD first: the answer is a bare 403
        lambda: storage.ls_sync("s3://any-bucket", settings=settings),
    ):
        with pytest.raises(StorageError) as caught:
            operation()
        assert caught.value.reason == "permission"
        assert "s3://any-bucket" in str(caught.value)
        assert "access denied" in str(caught.value)


def test_missing_credentials_say_where_to_put_them(s3_env: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    import flyte_celery as flyte

    monkeypatch.delenv("FLYTE_CELERY_STORAGE_ACCESS_KEY_ID")
    monkeypatch.delenv("FLYTE_CELERY_STORAGE_SECRET_ACCESS_KEY")
    flyte.init_from_config()
    with pytest.raises(StorageError) as caught:
        storage.get_bytes_sync("s3://some-bucket/k")
    assert caught.value.reason == "credentials"
    assert "s3://some-bucket/k" in str(caught.value)
    assert "FLYTE_CELERY_STORAGE_ACCESS_KEY_ID" in str(caught.value)


def test_an_unreachable_endpoint_fails_within_seconds_without_blocking_the_loop(
    s3_env: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flyte_celery as flyte

    monkeypatch.setenv("FLYTE_CELERY_STORAGE_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("FLYTE_CELERY_STORAGE_MAX_ATTEMPTS", "2")
    flyte.init_from_config()
    url = "s3://unreachable-bucket/key.txt"

    async def main() -> tuple[BaseException | None, int]:
        ticks = 0
        done = asyncio.Event()

        async def tick() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        try:
            await storage.get_bytes(url)
        except StorageError as exc:
            return exc, ticks
        finally:
            done.set()
            await ticker
        return None, ticks

    started = time.monotonic()
    error, ticks = asyncio.run(main())
    elapsed = time.monotonic() - started
    assert isinstance(error, StorageError), error
    assert error.reason == "unreachable"
    assert url in str(error)
    assert elapsed < UNREACHABLE_DEADLINE_S, f"took {elapsed:.1f}s"
    assert ticks > 5, "the event loop was blocked while the request failed"
    with pytest.raises(StorageError) as caught:
        storage.exists_sync(url)
    assert caught.value.reason == "unreachable"


def test_explicit_settings_win_over_aws_variables(
    s3_env: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flyte_celery as flyte

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # would fail if it were used
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ignored")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ignored")
    flyte.init_from_config()
    storage.put_bytes_sync(f"s3://{s3_bucket}/k", b"explicit")
    assert s3_env.client().get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"explicit"


def test_aws_variables_apply_when_settings_are_unset(
    s3_env: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flyte_celery as flyte

    for name in ("ENDPOINT_URL", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "REGION"):
        monkeypatch.delenv(f"FLYTE_CELERY_STORAGE_{name}")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_env.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-aws-variables")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-aws-variables")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    flyte.init_from_config()
    assert current_settings().storage.endpoint_url is None
    storage.put_bytes_sync(f"s3://{s3_bucket}/k", b"aws")
    assert s3_env.client().get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"aws"
