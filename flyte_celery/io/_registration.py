"""How the type engine converts values declared as `DataFrame`, and a `DataFrame` given where a pandas DataFrame or
a pyarrow Table is declared, as Flyte does at task boundaries:

- declared `DataFrame`: a pandas DataFrame or pyarrow Table is wrapped (`DataFrame.wrap_df`);
- declared `pandas.DataFrame` or `pyarrow.Table`: a `DataFrame` is opened as that type (read from its `uri` when it
  holds no frame), so the task receives, or its caller gets back, the declared type.

`File` and `Dir` need nothing beyond the engine's pydantic rules.
"""

from __future__ import annotations

from typing import Any

from flyte_celery._types import Converter, register
from flyte_celery._types.registry import is_pandas_frame
from flyte_celery.io._dataframe import DataFrame

# In-memory frames, by (top-level module, class name): recognised without importing pandas or pyarrow.
WRAPPED_FRAMES = frozenset({("pandas", "DataFrame"), ("pyarrow", "Table")})


def frame_converter(hint: Any) -> Converter:
    def convert(value: Any) -> Any:
        if isinstance(value, DataFrame):
            return value
        if _names_frame(type(value)):
            return DataFrame.wrap_df(value)
        raise TypeError(
            f"expected a flyte_celery.io.DataFrame, a pandas.DataFrame or a pyarrow.Table, not {type(value).__name__}"
        )

    return convert


def is_frame_class(hint: Any) -> bool:
    """Whether `hint` is pandas' `DataFrame` or pyarrow's `Table` (neither library is imported for that)."""
    return isinstance(hint, type) and (is_pandas_frame(hint) or _names_frame(hint))


def opened_as(hint: type) -> Converter:
    """Values declared as the frame class `hint`: its instances as they are, a `DataFrame` opened as `hint`."""

    def convert(value: Any) -> Any:
        if isinstance(value, hint):
            return value
        if isinstance(value, DataFrame):
            return value.open(hint).all_sync()
        raise TypeError(f"expected a {hint.__module__}.{hint.__name__} or a flyte_celery.io.DataFrame")

    return convert


def _names_frame(kind: type) -> bool:
    return (kind.__module__.partition(".")[0], kind.__name__) in WRAPPED_FRAMES


def register_types() -> None:
    """Tell the type engine about `DataFrame` (called once, when `flyte_celery.io` is imported)."""
    register(DataFrame, frame_converter)
    register(is_frame_class, opened_as)
