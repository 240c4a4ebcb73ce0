"""How the type engine converts values declared as `DataFrame`: a pandas DataFrame or pyarrow Table given where
a `DataFrame` is declared is wrapped (`DataFrame.wrap_df`), as Flyte does; `File` and `Dir` need nothing beyond
the engine's pydantic rules."""

from __future__ import annotations

from typing import Any

from flyte_celery._types import Converter, register
from flyte_celery.io._dataframe import DataFrame

# In-memory frames, by (top-level module, class name): recognised without importing pandas or pyarrow.
WRAPPED_FRAMES = frozenset({("pandas", "DataFrame"), ("pyarrow", "Table")})


def frame_converter(hint: Any) -> Converter:
    def convert(value: Any) -> Any:
        if isinstance(value, DataFrame):
            return value
        kind = type(value)
        if (kind.__module__.partition(".")[0], kind.__name__) in WRAPPED_FRAMES:
            return DataFrame.wrap_df(value)
        raise TypeError(
            f"expected a flyte_celery.io.DataFrame, a pandas.DataFrame or a pyarrow.Table, not {kind.__name__}"
        )

    return convert


def register_types() -> None:
    """Tell the type engine about `DataFrame` (called once, when `flyte_celery.io` is imported)."""
    register(DataFrame, frame_converter)
