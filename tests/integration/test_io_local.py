"""File, Dir and DataFrame in local mode, with the raw data path on this disk and in a bucket of a real S3 server.

Tasks write in one action and read in others; the client reads what the run returns. Every test runs for both
places, through the S3 settings given only as `FLYTE_CELERY_STORAGE_*` variables.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import flyte_celery as flyte
from flyte_celery import _storage as storage
from flyte_celery.io import DataFrame, Dir, EmptyDir, File
from tests._s3 import S3Server
from tests.integration.programs import io_tasks

pytest_plugins = ["tests._s3"]


@dataclass(frozen=True)
class Place:
    """Where a run's raw data goes."""

    raw: str
    s3: S3Server | None

    def holds(self, url: str) -> bool:
        return url.startswith(self.raw if self.s3 else os.path.abspath(self.raw))


@pytest.fixture(params=["disk", "s3"])
def place(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Place:
    monkeypatch.setenv("FLYTE_CELERY_LOCAL_CACHE_PATH", str(tmp_path / "cache" / "cache.db"))
    if request.param == "disk":
        flyte.init_from_config()
        return Place(str(tmp_path / "raw"), None)
    server: S3Server = request.getfixturevalue("s3_env")  # reads the cache path above too
    bucket = request.getfixturevalue("s3_bucket")
    return Place(f"s3://{bucket}/prefix", server)


def run(place: Place, task: Any, *args: Any) -> Any:
    return flyte.with_runcontext(mode="local", raw_data_path=place.raw).run(task, *args).outputs()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- File ----------------------------------------------------------------------------------------------------------


def test_a_file_written_by_one_task_is_read_by_others(place: Place) -> None:
    text = "hello\nworld\nthird line\n"
    assert run(place, io_tasks.file_round_trip, text)[0] == [text, text, text, text, text + "!"]


def test_the_client_reads_a_file_a_run_returned(place: Place, tmp_path: Path) -> None:
    file = run(place, io_tasks.write_text, "from a task", "out.txt")[0]
    assert isinstance(file, File)
    assert place.holds(file.path), file.path
    assert file.name == "out.txt"
    assert file.exists_sync()
    assert asyncio.run(file.exists())
    with file.open_sync("rb") as stream:
        assert stream.read() == b"from a task"
    assert Path(file.download_sync(tmp_path / "copy.txt")).read_text() == "from a task"
    assert Path(file.download_sync(str(tmp_path) + os.sep)) == tmp_path / "out.txt"
    if place.s3 is not None:
        bucket, key = file.path.removeprefix("s3://").split("/", 1)
        assert place.s3.client().get_object(Bucket=bucket, Key=key)["Body"].read() == b"from a task"


def test_from_local_in_a_task_keeps_a_local_file_or_uploads_it(place: Place) -> None:
    file = run(place, io_tasks.upload_local, "made locally")[0]
    assert file.name == "local.txt"
    if place.s3 is None:
        assert not place.holds(file.path), "a local raw data path keeps the file where the task wrote it"
        assert Path(file.path).read_text() == "made locally"
    else:
        assert place.holds(file.path), file.path
    assert run(place, io_tasks.read_text, file)[0] == "made locally"


def test_from_local_outside_a_task_uploads_under_the_configured_raw_data_path(
    place: Place, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYTE_CELERY_RUN_RAW_DATA_PATH", place.raw)
    flyte.init_from_config()
    source = tmp_path / "input.txt"
    source.write_text("from the client")
    file = File.from_local_sync(source)
    assert place.holds(file.path), file.path
    assert file.name == "input.txt"
    assert run(place, io_tasks.read_text, file)[0] == "from the client"
    destination = storage.join(place.raw, "chosen", "place.txt")
    chosen = asyncio.run(File.from_local(source, remote_destination=destination, hash_method="my-key"))
    assert (chosen.path, chosen.hash) == (os.path.abspath(destination) if place.s3 is None else destination, "my-key")
    assert run(place, io_tasks.read_text_sync, chosen)[0] == "from the client"
    with pytest.raises(ValueError, match="File not found"):
        File.from_local_sync(tmp_path / "absent.txt")


def test_hash_methods_compute_the_hash_from_the_bytes(place: Place) -> None:
    uploaded = run(place, io_tasks.upload_local_hashed, "hash me")[0]
    assert uploaded.hash == sha256("hash me")
    written = run(place, io_tasks.write_hashed, "streamed bytes")[0]
    assert written.hash == sha256("streamed bytes")


def test_named_remote_is_the_actions_own_stable_path(place: Place) -> None:
    path, action, base, text = run(place, io_tasks.write_named, "named")[0]
    assert path == storage.join(os.path.abspath(base) if place.s3 is None else base, action, "named.txt")
    assert text == "named"
    with pytest.raises(ValueError, match="needs a running task"):
        File.named_remote("outside.txt")


def test_the_cache_keys_on_a_files_hash_else_its_path(place: Place) -> None:
    def stamp(file: File) -> str:
        return str(run(place, io_tasks.stamp_file, file)[0])

    a, b = storage.join(place.raw, "a.txt"), storage.join(place.raw, "b.txt")
    assert stamp(File.from_existing_remote(a, file_cache_key="same")) == stamp(
        File.from_existing_remote(b, file_cache_key="same")
    )
    assert stamp(File.from_existing_remote(a, file_cache_key="one")) != stamp(
        File.from_existing_remote(a, file_cache_key="two")
    )
    assert stamp(File.from_existing_remote(a)) == stamp(File.from_existing_remote(a))
    assert stamp(File.from_existing_remote(a)) != stamp(File.from_existing_remote(b))


# --- Dir -----------------------------------------------------------------------------------------------------------


def test_a_dir_made_by_one_task_is_walked_by_others(place: Place) -> None:
    files = {"a.txt": "A", "sub/b.txt": "B", "sub/deeper/c.csv": "C"}
    walked, top, got, exists, inspected = run(place, io_tasks.dir_round_trip, files)[0]
    assert walked == files
    assert top == ["a.txt"]
    assert got
    assert exists
    assert inspected == [["a.txt"], ["a.txt", "b.txt"], True, True, True, sorted(files)]


def test_the_client_lists_and_downloads_a_returned_dir(place: Place, tmp_path: Path) -> None:
    directory = run(place, io_tasks.fill_new_dir, ["x.bin", "y.bin"])[0]
    assert isinstance(directory, Dir)
    assert place.holds(directory.path)
    assert directory.name == "filled"
    assert [file.name for file in directory.list_files_sync()] == ["x.bin", "y.bin"]
    local = Path(directory.download_sync(tmp_path / "down"))
    assert {path.name: path.read_bytes() for path in local.iterdir()} == {"x.bin": b"x.bin", "y.bin": b"y.bin"}


def test_dir_from_local_outside_a_task_and_from_existing_remote(
    place: Place, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYTE_CELERY_RUN_RAW_DATA_PATH", place.raw)
    flyte.init_from_config()
    source = tmp_path / "tree"
    (source / "in").mkdir(parents=True)
    (source / "top.txt").write_text("T")
    (source / "in" / "low.txt").write_text("L")
    uploaded = Dir.from_local_sync(source, dir_cache_key="tree-v1")
    assert place.holds(uploaded.path)
    assert (uploaded.name, uploaded.hash) == ("tree", "tree-v1")
    again = Dir.from_existing_remote(uploaded.path)
    assert run(place, io_tasks.read_dir, again)[0] == {"top.txt": "T", "in/low.txt": "L"}
    assert not Dir.from_existing_remote(storage.join(place.raw, "nothing-here")).exists_sync()
    with pytest.raises(ValueError, match="Directory not found"):
        asyncio.run(Dir.from_local(tmp_path / "absent"))
    assert Dir.empty().is_empty
    assert EmptyDir().is_empty


# --- DataFrame -----------------------------------------------------------------------------------------------------


def test_a_dataframe_made_by_one_task_is_read_by_others(place: Place) -> None:
    assert run(place, io_tasks.frame_round_trip, 10)[0] == [45, 10, 10, 45]


def test_the_client_reads_a_returned_dataframe(place: Place) -> None:
    frame = run(place, io_tasks.make_frame, 4)[0]
    assert isinstance(frame, DataFrame)
    assert frame.uri is not None
    assert place.holds(frame.uri)
    assert frame.format == "parquet"
    expected = pd.DataFrame({"x": [0, 1, 2, 3], "label": ["r0", "r1", "r2", "r3"]})
    pd.testing.assert_frame_equal(frame.open(pd.DataFrame).all_sync(), expected)

    async def chunks() -> int:
        return sum([len(chunk) async for chunk in await frame.open(pd.DataFrame).iter()])

    assert asyncio.run(chunks()) == 4


def test_a_pandas_frame_returned_as_a_dataframe_is_wrapped(place: Place) -> None:
    frame = run(place, io_tasks.raw_frame, 3)[0]
    assert isinstance(frame, DataFrame)
    assert frame.open(pd.DataFrame).all_sync()["x"].tolist() == [0, 1, 2]


def test_dataframes_stored_elsewhere_are_read_as_parquet_or_csv(place: Place, tmp_path: Path) -> None:
    expected = pd.DataFrame({"a": [1, 2], "b": ["u", "v"]})
    parquet_url = storage.join(place.raw, "outside", "table.parquet")
    csv_url = storage.join(place.raw, "outside", "table.csv")
    local = tmp_path / "table.parquet"
    expected.to_parquet(local)
    storage.put_path_sync(local, parquet_url)
    storage.put_bytes_sync(csv_url, expected.to_csv(index=False).encode())
    parquet = DataFrame.from_existing_remote(parquet_url, format="parquet")
    csv = DataFrame.from_existing_remote(csv_url, format="csv")
    assert run(place, io_tasks.frame_rows_sync, parquet)[0] == 2
    pd.testing.assert_frame_equal(csv.open(pd.DataFrame).all_sync(), expected)


def test_the_cache_keys_on_a_dataframes_content_or_hash(place: Place) -> None:
    def stamp(frame: DataFrame) -> str:
        return str(run(place, io_tasks.stamp_frame, frame)[0])

    same = stamp(DataFrame.wrap_df(pd.DataFrame({"x": [1, 2]})))
    assert stamp(DataFrame.wrap_df(pd.DataFrame({"x": [1, 2]}))) == same
    assert stamp(DataFrame.wrap_df(pd.DataFrame({"x": [1, 3]}))) != same
    first = DataFrame.from_local_sync(pd.DataFrame({"x": [1]}), hash_method="v1")
    second = DataFrame.from_local_sync(pd.DataFrame({"x": [2]}), hash_method="v1")
    assert first.uri != second.uri
    assert stamp(first) == stamp(second)
