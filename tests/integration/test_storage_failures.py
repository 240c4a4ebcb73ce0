"""Bad storage configuration fails a run at its launch, with an error naming the URL and the cause, and never hangs.

Each case launches a remote or hybrid run whose `run_base_dir` and `raw_data_path` are on storage that cannot be
used: an endpoint nobody listens on, a bucket that does not exist, credentials the server refuses (moto's server
with authentication on, `tests._s3.s3_auth_server`), no credentials at all, and protocols whose pip extra is not
installed (`gs://`, `az://`). The storage probe (`flyte_celery/_storage/probe.py`) runs before anything is sent, so
no worker is needed; the last test has a worker that cannot reach the storage its client can, and the run fails on
that worker instead of waiting for an outcome that cannot be written.

Every call runs under a deadline: returning (with the error) is the assertion that it did not hang.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import flyte_celery as flyte
from flyte_celery._storage import probe
from flyte_celery.errors import StorageError
from tests._s3 import (
    ACCESS_KEY,
    AWS_VARIABLES,
    REGION,
    SECRET_KEY,
    STORAGE_VARIABLES,
    AuthS3Server,
    S3Server,
    free_port,
    isolated_aws_env,
    make_bucket,
)
from tests._workers import WorkerFactory
from tests.integration.programs import big_data, io_tasks, storage_failures

pytest_plugins = ["tests._s3"]

# A bound on the whole failing call: the probe's requests are bounded to seconds each.
CALL_DEADLINE_S = 60.0
RUN_DEADLINE_S = 60.0
MODES = ("remote", "hybrid")
# Over `storage.inline_max_bytes` (4 KiB by default): an output of this size is written to storage.
BIG_OUTPUT_BYTES = 64 * 1024


@pytest.fixture
def storage_env(redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., None]]:
    """Points this process at the session's Redis and at the storage given to the returned function."""
    probe.forget()

    def configure(**storage: str) -> None:
        for name in (*AWS_VARIABLES, *STORAGE_VARIABLES):
            monkeypatch.delenv(name, raising=False)
        for name, value in {**isolated_aws_env(), **storage}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("FLYTE_CELERY_BROKER_URL", redis_url)
        monkeypatch.setenv("FLYTE_CELERY_REDIS_URL", redis_url)
        monkeypatch.setenv("FLYTE_CELERY_LOCAL_CACHE_PATH", str(tmp_path / "cache.db"))
        flyte.init_from_config()

    yield configure
    monkeypatch.undo()
    flyte.init_from_config()
    probe.forget()


def s3_settings(endpoint: str, key: str | None = ACCESS_KEY, secret: str | None = SECRET_KEY) -> dict[str, str]:
    settings = {"FLYTE_CELERY_STORAGE_ENDPOINT_URL": endpoint, "FLYTE_CELERY_STORAGE_REGION": REGION}
    if key is not None and secret is not None:
        settings["FLYTE_CELERY_STORAGE_ACCESS_KEY_ID"] = key
        settings["FLYTE_CELERY_STORAGE_SECRET_ACCESS_KEY"] = secret
    return settings


def launch_fails(mode: str, base: str) -> StorageError:
    """Launch a run with its data under `base`; the error it raised (failing if none, or if it took too long)."""

    def launch() -> Any:
        options = flyte.with_runcontext(mode=mode, raw_data_path=f"{base}/raw", run_base_dir=f"{base}/metadata")
        return options.run(io_tasks.write_text, "never written", "out.txt")

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(launch)
        try:
            error = future.exception(timeout=CALL_DEADLINE_S)
        except concurrent.futures.TimeoutError:
            pytest.fail(f"launching a {mode} run with data under {base} did not return within {CALL_DEADLINE_S}s")
    assert error is not None, f"a {mode} run with data under {base} launched"
    assert isinstance(error, StorageError), repr(error)
    assert base in str(error), str(error)
    return error


@pytest.mark.parametrize("mode", MODES)
def test_an_unreachable_endpoint_fails_the_launch(mode: str, storage_env: Callable[..., None]) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    storage_env(**s3_settings(endpoint))
    error = launch_fails(mode, "s3://some-bucket/prefix")
    assert error.reason == "unreachable", str(error)
    assert endpoint in str(error) or "endpoint" in str(error), str(error)


@pytest.mark.parametrize("mode", MODES)
def test_a_missing_bucket_fails_the_launch(mode: str, storage_env: Callable[..., None], s3_server: S3Server) -> None:
    storage_env(**s3_settings(s3_server.endpoint))
    bucket = f"no-such-bucket-{secrets.token_hex(4)}"
    error = launch_fails(mode, f"s3://{bucket}/prefix")
    assert error.reason == "no_bucket", str(error)
    assert "bucket does not exist" in str(error)


@pytest.mark.parametrize("mode", MODES)
def test_refused_credentials_fail_the_launch(
    mode: str, storage_env: Callable[..., None], s3_auth_server: AuthS3Server
) -> None:
    storage_env(**s3_settings(s3_auth_server.endpoint, key="AKIAUNKNOWNKEY000000", secret="wrong"))
    error = launch_fails(mode, "s3://any-bucket/prefix")
    assert error.reason == "credentials", str(error)
    assert "credentials were refused" in str(error)


def test_credentials_without_permission_fail_the_launch(
    storage_env: Callable[..., None], s3_auth_server: AuthS3Server
) -> None:
    storage_env(**s3_settings(s3_auth_server.endpoint, s3_auth_server.powerless_key, s3_auth_server.powerless_secret))
    error = launch_fails("remote", "s3://any-bucket/prefix")
    assert error.reason == "permission", str(error)


@pytest.mark.parametrize("mode", MODES)
def test_missing_credentials_fail_the_launch(
    mode: str, storage_env: Callable[..., None], s3_auth_server: AuthS3Server
) -> None:
    """No key anywhere (settings, AWS variables, AWS files; the instance-metadata service is switched off)."""
    storage_env(**s3_settings(s3_auth_server.endpoint, key=None, secret=None))
    error = launch_fails(mode, "s3://any-bucket/prefix")
    assert error.reason == "credentials", str(error)
    assert "no credentials found" in str(error)


@pytest.mark.parametrize("url", ["gs://some-bucket/prefix", "az://some-container/prefix"])
def test_a_protocol_without_its_extra_fails_the_launch(url: str, storage_env: Callable[..., None]) -> None:
    package = {"gs": "gcsfs", "az": "adlfs"}[url.split(":", 1)[0]]
    if importlib.util.find_spec(package) is not None:
        pytest.fail(f"{package} is installed here, so {url} cannot show a missing extra: uninstall it for this test")
    storage_env()
    error = launch_fails("remote", url)
    assert error.reason == "missing_extra", str(error)
    extra = {"gcsfs": "gcs", "adlfs": "azure"}[package]
    assert f"flyte-celery[{extra}]" in str(error)


def test_a_worker_that_cannot_reach_storage_fails_the_run(
    worker_factory: WorkerFactory, s3_env: S3Server, s3_bucket: str
) -> None:
    """The client reaches the bucket (its probe passes); the worker is pointed at a dead endpoint. The task itself
    touches no storage, but its output is too big to travel inline, so it would go to storage: the run fails with
    the worker's StorageError instead of waiting for an outcome that worker could never store."""
    probe.forget()
    worker_env = {**s3_env.env(), "FLYTE_CELERY_STORAGE_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    worker_factory.start(1, **worker_env)
    base = f"s3://{s3_bucket}/worker-cannot"
    options = flyte.with_runcontext(mode="remote", raw_data_path=f"{base}/raw", run_base_dir=f"{base}/metadata")
    run = options.run(big_data.produce, BIG_OUTPUT_BYTES)
    assert run.wait(timeout=RUN_DEADLINE_S) == flyte.ActionPhase.FAILED, run.name
    with pytest.raises(StorageError) as caught:
        run.outputs(timeout=RUN_DEADLINE_S)
    assert base in str(caught.value), str(caught.value)
    assert caught.value.reason == "unreachable", str(caught.value)


def test_an_outcome_that_cannot_be_stored_fails_the_run(worker_factory: WorkerFactory, s3_env: S3Server) -> None:
    """Storage that passed the probes goes away mid-run (the task deletes the bucket): the write of the task's big
    output fails, and that failure becomes the action's outcome instead of leaving its waiters waiting."""
    probe.forget()
    worker_factory.start(1, **s3_env.env())
    bucket = make_bucket(s3_env)  # deleted by the task
    base = f"s3://{bucket}/gone"
    options = flyte.with_runcontext(mode="remote", raw_data_path=f"{base}/raw", run_base_dir=f"{base}/metadata")
    task = storage_failures.drop_bucket_then_return
    run = options.run(task, s3_env.endpoint, ACCESS_KEY, SECRET_KEY, bucket, BIG_OUTPUT_BYTES)
    assert run.wait(timeout=RUN_DEADLINE_S) == flyte.ActionPhase.FAILED, run.name
    with pytest.raises(StorageError) as caught:
        run.outputs(timeout=RUN_DEADLINE_S)
    assert caught.value.reason == "no_bucket", str(caught.value)
    assert f"{base}/metadata" in str(caught.value), str(caught.value)


def test_a_place_that_passed_is_not_probed_again_in_this_process(s3_env: S3Server) -> None:
    """One round trip per process and place: once a bucket passed, its probe answers from memory (even after the
    bucket is gone), another bucket is still probed, and `forget()` makes the next probe go to the server."""
    probe.forget()
    bucket = make_bucket(s3_env)
    probe.probe_sync(f"s3://{bucket}/run-1")
    s3_env.client().delete_bucket(Bucket=bucket)  # empty: the probe deleted its object
    probe.probe_sync(f"s3://{bucket}/run-2")
    with pytest.raises(StorageError) as other:
        probe.probe_sync(f"s3://{bucket}-other/run-1")
    assert other.value.reason == "no_bucket", str(other.value)
    probe.forget()
    with pytest.raises(StorageError) as again:
        probe.probe_sync(f"s3://{bucket}/run-3")
    assert again.value.reason == "no_bucket", str(again.value)
    assert f"s3://{bucket}/run-3" in str(again.value)
