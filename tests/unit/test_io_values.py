"""`File`, `Dir` and `DataFrame` as values: their fields and defaults, pickling (they travel pickled between
processes), the cache key each gives, hash methods, the public names, and the errors of the DataFrame API. Local
files only; the behaviour in runs is in `tests/integration/test_io_local.py` and `test_io_remote.py`."""

from __future__ import annotations

import asyncio
import hashlib
import pickle
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

import flyte_celery.io
from flyte_celery._cache.hashing import encode_value
from flyte_celery.io import DataFrame, Dir, EmptyDir, File, HashFunction
from flyte_celery.io._hashing import split_hash_method

# `flyte.io.__all__` of the Flyte SDK this package follows.
FLYTE_IO_NAMES = ["PARQUET", "DataFrame", "Dir", "EmptyDir", "File", "HashFunction"]


class Sha256:
    def __init__(self) -> None:
        self._digest = hashlib.sha256()

    def update(self, data: Any, /) -> None:
        self._digest.update(data)

    def result(self) -> str:
        return self._digest.hexdigest()


def test_the_public_names_are_flytes() -> None:
    assert flyte_celery.io.__all__ == FLYTE_IO_NAMES


def test_names_default_to_the_last_part_of_the_path() -> None:
    assert File(path="s3://bucket/a/b.csv").name == "b.csv"
    assert File(path="/tmp/x/data.bin", name="given").name == "given"
    assert Dir(path="s3://bucket/folder/").name == "folder"


def test_the_format_parameter_is_documentation() -> None:
    assert File[pd.DataFrame] is File
    assert Dir[str] is Dir
    assert type(File[pd.DataFrame](path="/x")) is File


@pytest.mark.parametrize(
    "value",
    [
        File(path="s3://b/k.txt", format="txt", hash="h"),
        Dir(path="/tmp/d", hash="dir-key"),
        EmptyDir(),
        DataFrame.from_existing_remote("s3://b/table", format="parquet"),
    ],
)
def test_values_pickle_as_they_are(value: Any) -> None:
    copy = pickle.loads(pickle.dumps(value))
    assert type(copy) is type(value)
    assert copy == value


def test_a_wrapped_frame_travels_with_its_value_and_chosen_type() -> None:
    wrapped = DataFrame.wrap_df(pd.DataFrame({"x": [1, 2]})).open(pa.Table)
    copy = pickle.loads(pickle.dumps(wrapped))
    assert copy.all_sync().num_rows == 2
    pd.testing.assert_frame_equal(copy.val, pd.DataFrame({"x": [1, 2]}))


def test_a_file_with_a_hash_method_pickles_with_its_result(tmp_path: Path) -> None:
    file = File(path=str(tmp_path / "out.bin"))
    file._hash_method = Sha256()
    with file.open_sync("wb") as stream:
        stream.write(b"ab")
        stream.write(b"c")
    assert file.hash == hashlib.sha256(b"abc").hexdigest()
    copy = pickle.loads(pickle.dumps(file))
    assert (copy.hash, copy._hash_method) == (file.hash, None)


def test_cache_keys_use_the_hash_else_the_path() -> None:
    assert encode_value(File(path="/a", hash="k")) == encode_value(File(path="/b", hash="k"))
    assert encode_value(File(path="/a")) != encode_value(File(path="/b"))
    assert encode_value(Dir(path="/a", hash="k")) == encode_value(Dir(path="/b", hash="k"))


def test_cache_keys_of_dataframes_use_the_hash_else_the_content_else_the_uri() -> None:
    def key(frame: DataFrame) -> bytes:
        return encode_value(frame)

    assert key(DataFrame.wrap_df(pd.DataFrame({"x": [1]}))) == key(DataFrame.wrap_df(pd.DataFrame({"x": [1]})))
    assert key(DataFrame.wrap_df(pd.DataFrame({"x": [1]}))) != key(DataFrame.wrap_df(pd.DataFrame({"x": [2]})))
    assert key(DataFrame(uri="s3://b/1", hash="k")) == key(DataFrame(uri="s3://b/2", hash="k"))
    assert key(DataFrame(uri="s3://b/1")) != key(DataFrame(uri="s3://b/2"))


def test_hash_methods() -> None:
    function = HashFunction.from_fn(lambda frame: str(len(frame)))
    with pytest.raises(ValueError, match="before any update"):
        function.result()
    function.update([1, 2, 3])
    assert function.result() == "3"
    assert split_hash_method("key") == ("key", None)
    assert split_hash_method(function) == (None, function)
    with pytest.raises(TypeError, match="hash_method"):
        split_hash_method(42)  # type: ignore[arg-type]


def test_a_dataframe_hash_function_sees_the_whole_frame(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1, 2, 3]})
    stored = DataFrame.from_local_sync(
        frame, remote_destination=str(tmp_path / "t"), hash_method=HashFunction.from_fn(lambda df: f"rows={len(df)}")
    )
    assert stored.hash == "rows=3"
    assert (tmp_path / "t" / "00000").is_file()  # Flyte's layout: a directory holding the parquet part


def test_text_modes_and_async_files_on_local_paths(tmp_path: Path) -> None:
    file = File(path=str(tmp_path / "deep" / "notes.txt"))
    with file.open_sync("w", encoding="utf-8") as stream:
        stream.write("é\nline two\n")
    with file.open_sync("r", encoding="utf-8") as stream:
        assert stream.read() == "é\nline two\n"

    async def lines() -> list[bytes]:
        async with file.open("rb") as stream:
            return [line async for line in stream]

    assert asyncio.run(lines()) == ["é\n".encode(), b"line two\n"]


def test_dataframe_misuse_says_what_to_do() -> None:
    with pytest.raises(ValueError, match=r"call open\(pandas.DataFrame\)"):
        DataFrame(uri="/x").all_sync()
    with pytest.raises(ValueError, match="no frame and no uri"):
        DataFrame().open(pd.DataFrame).all_sync()
    with pytest.raises(TypeError, match=r"pandas\.DataFrame or pyarrow\.Table"):
        DataFrame.wrap_df(pd.DataFrame({"x": [1]})).open(list).all_sync()
    with pytest.raises(TypeError, match="cannot store a dict"):
        DataFrame.from_local_sync({"x": [1]}, remote_destination="/tmp/never-written")


def test_without_pyarrow_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"pip install 'flyte-celery\[dataframe\]'"):
        DataFrame.from_local_sync(pd.DataFrame({"x": [1]}), remote_destination=str(tmp_path / "t"))
