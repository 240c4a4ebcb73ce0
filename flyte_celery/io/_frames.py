"""Tables on storage for `DataFrame`: parquet (and csv) through pyarrow and pandas, which are an optional extra.

The layout is Flyte's: a data frame's `uri` is a directory holding `00000` (parquet) or `data.csv`; a `uri` naming a
single file is read as that file. `pandas.DataFrame` and `pyarrow.Table` are the in-memory types.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any, Final

from flyte_celery import _storage as storage

PARQUET: Final = "parquet"
CSV: Final = "csv"
PARQUET_PART: Final = f"{0:05}"
CSV_FILE: Final = "data.csv"
EXTRA_HINT: Final = "pip install 'flyte-celery[dataframe]'"
# Files beside the data that writers such as Spark leave (_SUCCESS, .crc): not part of the table.
_HIDDEN_PREFIXES: Final = ("_", ".")


def arrow() -> Any:
    """The `pyarrow` module (with `pyarrow.parquet` loaded), or an ImportError naming the extra to install."""
    try:
        import pyarrow
        import pyarrow.parquet  # loads the submodule onto `pyarrow`
    except ImportError as exc:
        raise ImportError(f"flyte_celery.io.DataFrame needs pyarrow and pandas ({exc}): {EXTRA_HINT}") from exc
    return pyarrow


def pandas() -> Any:
    """The `pandas` module, or an ImportError naming the extra to install."""
    try:
        import pandas
    except ImportError as exc:
        raise ImportError(f"flyte_celery.io.DataFrame needs pyarrow and pandas ({exc}): {EXTRA_HINT}") from exc
    return pandas


def to_table(frame: Any) -> Any:
    """`frame` (a pandas DataFrame or a pyarrow Table) as a pyarrow Table."""
    pa = arrow()
    if isinstance(frame, pa.Table):
        return frame
    if isinstance(frame, pandas().DataFrame):
        return pa.Table.from_pandas(frame)
    raise TypeError(f"cannot store a {type(frame).__name__} as a DataFrame: use a pandas.DataFrame or pyarrow.Table")


def convert(frame: Any, target: type) -> Any:
    """`frame` as an instance of `target` (pandas.DataFrame or pyarrow.Table)."""
    if isinstance(frame, target):
        return frame
    pa = arrow()
    if target is pa.Table:
        return to_table(frame)
    if target is pandas().DataFrame:
        return to_table(frame).to_pandas()
    raise TypeError(f"cannot open a DataFrame as {target!r}: use pandas.DataFrame or pyarrow.Table")


def write(frame: Any, uri: str) -> None:
    """Write `frame` as parquet under the directory `uri`."""
    pq = arrow().parquet
    table = to_table(frame)
    with storage.open_sync(storage.join(uri, PARQUET_PART), "wb") as stream:
        pq.write_table(table, stream)


def read(uri: str, fmt: str) -> Any:
    """The whole table stored at `uri`, as a pyarrow Table."""
    pa = arrow()
    tables = [_read_part(part, fmt) for part in _parts(uri)]
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def batches(uri: str, fmt: str) -> Iterator[Any]:
    """The table stored at `uri` in pieces (parquet record batches; a csv file whole), as pyarrow Tables."""
    pa = arrow()
    for part in _parts(uri):
        if _is_csv(part, fmt):
            yield _read_part(part, fmt)
            continue
        with storage.open_sync(part, "rb") as stream:
            for batch in pa.parquet.ParquetFile(stream).iter_batches():
                yield pa.Table.from_batches([batch])


def digest(frame: Any) -> str:
    """A SHA-256 of the frame's content and schema (its Arrow IPC stream), for cache keys of unstored frames."""
    pa = arrow()
    table = to_table(frame)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def _parts(uri: str) -> list[str]:
    parts = [path for path in storage.find_sync(uri) if not PurePosixPath(path).name.startswith(_HIDDEN_PREFIXES)]
    if not parts:
        raise storage.StorageError(uri, "not_found", "no data files there", "read a DataFrame from")
    return parts


def _read_part(part: str, fmt: str) -> Any:
    with storage.open_sync(part, "rb") as stream:
        if _is_csv(part, fmt):
            return to_table(pandas().read_csv(stream))
        return arrow().parquet.read_table(stream)


def _is_csv(part: str, fmt: str) -> bool:
    return fmt == CSV or part.endswith(".csv")
