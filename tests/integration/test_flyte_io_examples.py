"""Programs in the style of flyte-sdk's File, Dir and DataFrame examples (`programs/flyte_io_examples/`) run
unchanged in every mode: local with the raw data on this disk, and local, hybrid and remote with it in a bucket of
a real S3 server (moto's), the remote and hybrid children on a real worker configured only with the server's
`FLYTE_CELERY_STORAGE_*` variables.

The client is configured as a user would be: `run.raw_data_path` and `run.run_base_dir` in its settings, the
programs' `with_runcontext(mode=...)` naming nothing but the mode.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import flyte_celery as flyte
from flyte_celery.io import DataFrame, Dir, File
from tests._s3 import AWS_VARIABLES, STORAGE_VARIABLES, S3Server, drop_bucket, make_bucket
from tests._services import claim_redis_db, ensure_redis, redis_base_url, release_redis_db
from tests._workers import WorkerFactory
from tests.integration.programs.flyte_io_examples import dataframes, dirs_async, dirs_sync, files_async, files_sync

pytest_plugins = ["tests._s3"]

RUN_DEADLINE_S = 90.0
WORKER_CONCURRENCY = 4
# (mode, where the raw data and run metadata go)
PLACES = [("local", "disk"), ("local", "s3"), ("hybrid", "s3"), ("remote", "s3")]


@dataclass(frozen=True)
class Cluster:
    """A worker configured for the S3 server, and a bucket of this module's own."""

    workers: WorkerFactory
    server: S3Server
    bucket: str


@dataclass(frozen=True)
class Place:
    mode: str
    raw: str
    s3: S3Server | None

    def run(self, task: Any, *args: Any, **kwargs: Any) -> Any:
        run = flyte.with_runcontext(mode=self.mode).run(task, *args, **kwargs)
        return run.outputs(timeout=RUN_DEADLINE_S)[0]

    def holds(self, path: str) -> bool:
        return path.startswith(self.raw)


@pytest.fixture(scope="module")
def s3_cluster(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = redis_base_url()
    ensure_redis(base)
    db = claim_redis_db(base)
    url = f"{base}/{db}"
    bucket = make_bucket(s3_server)
    queue = f"flyte-io-{secrets.token_hex(4)}"
    factory = WorkerFactory(url, url, queue, tmp_path_factory.mktemp("flyte-io-workers"))
    try:
        factory.start(WORKER_CONCURRENCY, **s3_server.env())
        yield Cluster(factory, s3_server, bucket)
    finally:
        factory.stop_all()
        drop_bucket(s3_server, bucket)
        release_redis_db(base, db)


@pytest.fixture(params=PLACES, ids=lambda place: "-".join(place))
def place(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Place]:
    mode, where = request.param
    monkeypatch.setenv("FLYTE_CELERY_LOCAL_CACHE_PATH", str(tmp_path / "cache" / "cache.db"))
    for name in (*AWS_VARIABLES, *STORAGE_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    server: S3Server | None = None
    if where == "disk":
        raw, base = str(tmp_path / "raw"), str(tmp_path / "metadata")
    else:
        cluster: Cluster = request.getfixturevalue("s3_cluster")
        server = cluster.server
        prefix = f"s3://{cluster.bucket}/{secrets.token_hex(4)}"
        raw, base = f"{prefix}/raw", f"{prefix}/metadata"
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        if mode != "local":
            for name, value in cluster.workers.env.items():
                monkeypatch.setenv(name, value)
    monkeypatch.setenv("FLYTE_CELERY_RUN_RAW_DATA_PATH", raw)
    monkeypatch.setenv("FLYTE_CELERY_RUN_RUN_BASE_DIR", base)
    flyte.init_from_config()
    yield Place(mode, raw, server)
    monkeypatch.undo()
    flyte.init_from_config()


def test_file_examples_async(place: Place) -> None:
    out = place.run(files_async.main)
    assert out["text"] == out["downloaded"] == out["existing"] == "Hello, Flyte Async API!"
    assert out["exists"] is True
    assert out["uploaded"] == out["copied"] == "Content from local file!"
    assert str(out["uploaded_name"]).endswith(".txt")
    assert out["properties"]["name"] == out["uploaded_name"]
    assert out["streamed"] == "This is streaming content that will be written in chunks!"
    assert out["named_path"] == out["updated_path"]
    assert str(out["named_path"]).endswith("/my_data.txt")
    assert out["original_ref_after_overwrite"] == "Updated content - version 2"
    assert out["checkpoint"] == "attempt 1"
    assert str(out["checkpoint_path"]).endswith("/checkpoint.txt")
    assert out["hash"] == files_async.hashlib.sha256(b"content to hash").hexdigest()
    assert out["listed"] == ["a", "b", "c"]
    file = out["file"]
    assert isinstance(file, File)
    assert place.holds(file.path), file.path
    with file.open_sync("rb") as stream:
        assert stream.read() == b"Hello, Flyte Async API!"
    if place.s3 is not None:
        bucket, key = file.path.removeprefix("s3://").split("/", 1)
        assert place.s3.client().get_object(Bucket=bucket, Key=key)["Body"].read() == b"Hello, Flyte Async API!"


def test_file_examples_sync(place: Place) -> None:
    out = place.run(files_sync.main)
    assert out == {
        "text": "Hello, Flyte Sync API!",
        "exists": True,
        "missing_exists": False,
        "downloaded": "Hello, Flyte Sync API!",
        "uploaded": "Content from local file!",
        "existing": "Hello, Flyte Sync API!",
        "copied": "Content from local file!",
        "name": out["name"],
    }
    assert str(out["name"]).endswith(".txt")


def test_a_file_the_client_uploads_is_read_in_a_task(place: Place, tmp_path: Path) -> None:
    local = tmp_path / "hello.txt"
    local.write_text("Hello, Flyte!")
    file = File.from_local_sync(local)
    assert place.holds(file.path), file.path
    assert file.name == "hello.txt"
    assert place.run(files_sync.process_file, file=file) == "Hello, Flyte!"


def test_dir_examples_async(place: Place) -> None:
    out = place.run(dirs_async.main)
    assert out["exists"] is True
    assert out["listed"] == out["flat"] == out["depth_1"] == ["file1.txt", "file2.txt"]
    assert out["walked"] == ["file1.txt", "file2.txt", "file3.txt"]
    assert out["specific"] == "file1.txt"
    assert out["missing"] is None
    contents = {"file1.txt": "Content of file 1", "file2.txt": "Content of file 2"}
    assert out["contents"] == out["reference_contents"] == contents
    assert out["downloaded"] == ["file1.txt", "file2.txt", "subdir/file3.txt"]
    assert out["downloaded_to_path"] is True
    assert out["cache_key"] == "my_custom_cache_key_123"
    assert out["sizes"] == {"file1.txt": 17, "file2.txt": 17, "file3.txt": 33}
    remote_dir = out["dir"]
    assert isinstance(remote_dir, Dir)
    if place.s3 is not None:
        assert place.holds(remote_dir.path), remote_dir.path
    assert sorted(str(f.name) for f in remote_dir.walk_sync()) == ["file1.txt", "file2.txt", "file3.txt"]


def test_dir_examples_sync(place: Place) -> None:
    out = place.run(dirs_sync.main)
    assert out == {
        "exists": True,
        "listed": ["file1.txt", "file2.csv"],
        "txt": ["file1.txt", "file3.txt"],
        "depth_2": ["file1.txt", "file2.csv", "file3.txt"],
        "specific": "file1.txt",
        "extensions": {".txt": 2, ".csv": 1},
        "matching": ["file1.txt", "file3.txt"],
        "downloaded": ["file1.txt", "file2.csv", "subdir/file3.txt"],
    }


def test_a_dir_the_client_uploads_is_walked_in_a_task(place: Place) -> None:
    with tempfile.TemporaryDirectory(prefix="flyte_dir_local_example_") as temp_dir:
        for name in ("file1.py", "file2.py"):
            Path(temp_dir, name).write_text(f"print({name!r})")
        os.makedirs(Path(temp_dir, "sub"))
        Path(temp_dir, "sub", "file3.py").write_text("print(3)")
        directory = Dir.from_local_sync(temp_dir)
        assert place.run(dirs_sync.count_files, d=directory) == 3


def test_dataframe_examples(place: Place) -> None:
    out = place.run(dataframes.main)
    assert out["joined_shape"] == out["joined_in_a_task_shape"] == [8, 8]
    assert out["fdf_to_df_is_pandas"] is True
    assert out["df_to_fdf_is_flyte"] is True
    assert out["fdf_to_fdf"] == 8
    assert out["df"] is True
    expected_hash = pd.util.hash_pandas_object(pd.DataFrame(dataframes.SAMPLE_DATA).assign(run_name=out["run_name"]))
    assert out["hash"] == str(expected_hash.sum())
    assert out["cache_hit"] is True
    assert out["streamed_rows"] == 8
    assert out["nested"] == [3, 3, "3 extra", 11]
    stored = out["stored"]
    assert isinstance(stored, DataFrame)
    assert stored.uri is not None
    assert place.holds(stored.uri), stored.uri
    assert stored.open(pd.DataFrame).all_sync()["a"].tolist() == [1, 2, 3]


def test_dataframes_the_client_passes_reach_tasks_as_declared(place: Place) -> None:
    """As flyte-sdk's `dataframe_inputs.py`: an in-memory frame, a task's output frame, and flyte DataFrames
    wrapped or uploaded by the client, given to tasks that declare pandas or flyte DataFrames."""
    in_memory = pd.DataFrame({"name": ["Alice", "Bob"], "age": [25, 30]})
    from_task = place.run(dataframes.process_df, df=in_memory)
    assert isinstance(from_task, pd.DataFrame)
    uploaded = DataFrame.from_local_sync(in_memory)
    assert uploaded.uri is not None
    assert place.holds(uploaded.uri), uploaded.uri
    for frame in (in_memory, from_task):
        flyte_frame = DataFrame.from_df(frame)
        for given in (flyte_frame, uploaded):
            result = place.run(dataframes.process_fdf_to_df, df=given)
            assert isinstance(result, pd.DataFrame)
            assert result.equals(in_memory)
        as_flyte = place.run(dataframes.process_df_to_fdf, df=frame)
        assert isinstance(as_flyte, DataFrame)
        assert as_flyte.open(pd.DataFrame).all_sync().equals(in_memory)
        same = place.run(dataframes.process_fdf_to_fdf, df=flyte_frame)
        assert isinstance(same, DataFrame)
        assert same.open(pd.DataFrame).all_sync().equals(in_memory)
