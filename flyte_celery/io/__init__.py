"""Files, directories and data frames that tasks pass by reference (Flyte's `flyte.io`).

`File`, `Dir` and `DataFrame` hold a path (or URL) and a few plain fields, never the data: tasks hand them to each
other, in one process or across workers, and read or write the data where it lives. New data goes under the running
task's raw data path (`with_runcontext(raw_data_path="s3://bucket/prefix")`), outside a task under
`run.raw_data_path`. Object stores are configured in the `storage:` settings (or the standard AWS variables).
"""

from __future__ import annotations

from flyte_celery.io._dataframe import PARQUET, DataFrame
from flyte_celery.io._dir import Dir, EmptyDir
from flyte_celery.io._file import File
from flyte_celery.io._hashing import HashFunction
from flyte_celery.io._registration import register_types

register_types()

__all__ = [
    "PARQUET",
    "DataFrame",
    "Dir",
    "EmptyDir",
    "File",
    "HashFunction",
]
