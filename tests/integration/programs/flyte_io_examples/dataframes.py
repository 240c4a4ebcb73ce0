"""DataFrame: raw pandas frames across tasks, `DataFrame.from_df` / `wrap_df` / `from_local` (with a hash
function and a cache hit on it), `open(pd.DataFrame).all()` and `iter()`, a flyte DataFrame given where a pandas
frame is declared and back, frames inside records, and frames the client uploads (after flyte-sdk's
`dataframe_usage.py`, `dataframes/dataframe_inputs.py`, `dataframe_nested.py` and `hash_flyte_dataframe.py`)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel

import flyte_celery as flyte
import flyte_celery.io
from flyte_celery import Cache
from flyte_celery.io import DataFrame, HashFunction

env = flyte.TaskEnvironment("dataframe_examples")

BASIC_EMPLOYEE_DATA = {
    "employee_id": range(1001, 1009),
    "name": ["Alice", "Bob", "Charlie", "Diana", "Ethan", "Fiona", "George", "Hannah"],
    "department": ["HR", "Engineering", "Engineering", "Marketing", "Finance", "Finance", "HR", "Engineering"],
    "hire_date": pd.to_datetime(
        ["2018-01-15", "2019-03-22", "2020-07-10", "2017-11-01", "2021-06-05", "2018-09-13", "2022-01-07", "2020-12-30"]
    ),
}

ADDL_EMPLOYEE_DATA = {
    "employee_id": range(1001, 1009),
    "salary": [55000, 75000, 72000, 50000, 68000, 70000, np.nan, 80000],
    "bonus_pct": [0.05, 0.10, 0.07, 0.04, np.nan, 0.08, 0.03, 0.09],
    "full_time": [True, True, True, False, True, True, False, True],
    "projects": [
        ["Recruiting", "Onboarding"],
        ["Platform", "API"],
        ["API", "Data Pipeline"],
        ["SEO", "Ads"],
        ["Budget", "Forecasting"],
        ["Auditing"],
        [],
        ["Platform", "Security", "Data Pipeline"],
    ],
}

SAMPLE_DATA = {
    "id": [1, 2, 3, 4, 5],
    "name": ["Alice", "Bob", "Charlie", "Diana", "Eve"],
    "value": [100, 200, 300, 400, 500],
}


@env.task
async def create_raw_dataframe() -> pd.DataFrame:
    return pd.DataFrame(BASIC_EMPLOYEE_DATA)


@env.task
async def create_flyte_dataframe() -> Annotated[flyte_celery.io.DataFrame, "csv"]:
    pd_df = pd.DataFrame(ADDL_EMPLOYEE_DATA)
    return flyte_celery.io.DataFrame.from_df(pd_df)


@env.task
async def get_employee_data(raw_dataframe: pd.DataFrame, flyte_dataframe: pd.DataFrame) -> pd.DataFrame:
    """Takes a flyte DataFrame where a pandas frame is declared: it arrives as a pandas frame."""
    return raw_dataframe.merge(flyte_dataframe, on="employee_id", how="inner")


@env.task
async def joined_in_a_task() -> pd.DataFrame:
    raw_dataframe = await create_raw_dataframe()
    flyte_dataframe = await create_flyte_dataframe()
    downloaded_fdf = await flyte_dataframe.open(pd.DataFrame).all()
    return raw_dataframe.merge(downloaded_fdf, on="employee_id", how="inner")


@env.task
def process_df(df: pd.DataFrame) -> pd.DataFrame:
    return df


@env.task
def process_fdf_to_df(df: flyte_celery.io.DataFrame) -> pd.DataFrame:
    return df  # type: ignore[return-value]  # the type engine converts it at the task boundary


@env.task
def process_df_to_fdf(df: pd.DataFrame) -> flyte_celery.io.DataFrame:
    return flyte_celery.io.DataFrame.from_df(df)


@env.task
def process_fdf_to_fdf(df: flyte_celery.io.DataFrame) -> flyte_celery.io.DataFrame:
    return df


def hash_pandas_dataframe(df: pd.DataFrame) -> str:
    return str(pd.util.hash_pandas_object(df).sum())


@env.task
async def produce_dataframe() -> DataFrame:
    df = pd.DataFrame(SAMPLE_DATA)
    df["run_name"] = flyte.ctx().action.run_name  # type: ignore[union-attr]
    return await DataFrame.from_local(df, hash_method=HashFunction.from_fn(hash_pandas_dataframe))


@env.task(cache=Cache(behavior="override", version_override="v1"))
async def consume_dataframe(input_df: DataFrame) -> str:
    random_num = random.randint(1, 1000000)
    pdf = await input_df.open(pd.DataFrame).all()
    return f"Processed {len(pdf)} rows, total={pdf['value'].sum()}, random={random_num}"


@env.task
async def stream_rows(df: DataFrame) -> int:
    rows = 0
    async for chunk in await df.open(pa.Table).iter():
        rows += chunk.num_rows
    return rows


class MyModel(BaseModel):
    data: DataFrame
    model_config = {"arbitrary_types_allowed": True}


@dataclass
class MyDataclass:
    data: DataFrame


@env.task
async def inner_model(model: MyModel) -> int:
    return len(await model.data.open(pd.DataFrame).all())


@env.task
async def inner_dataclass(model: MyDataclass) -> int:
    return len(await model.data.open(pd.DataFrame).all())


@env.task
async def inner_tuple(data: tuple[DataFrame, str]) -> str:
    return f"{len(await data[0].open(pd.DataFrame).all())} {data[1]}"


@env.task
async def inner_dict(data: dict[str, DataFrame]) -> int:
    rows = 0
    for df in data.values():
        rows += len(await df.open(pd.DataFrame).all())
    return rows


@env.task
async def main() -> dict[str, object]:
    raw = await create_raw_dataframe()
    fdf = await create_flyte_dataframe()
    joined = await get_employee_data(raw_dataframe=raw, flyte_dataframe=fdf)  # type: ignore[arg-type]
    produced = await produce_dataframe()
    result1 = await consume_dataframe(produced)
    result2 = await consume_dataframe(produced)
    stored = await DataFrame.from_local(pd.DataFrame({"a": [1, 2, 3]}))
    return {
        "joined_shape": list(joined.shape),
        "joined_in_a_task_shape": list((await joined_in_a_task()).shape),
        "fdf_to_df_is_pandas": isinstance(await process_fdf_to_df.aio(fdf), pd.DataFrame),
        "df_to_fdf_is_flyte": isinstance(await process_df_to_fdf.aio(raw), DataFrame),
        "fdf_to_fdf": (await process_fdf_to_fdf.aio(fdf)).open(pd.DataFrame).all_sync().shape[0],
        "df": (await process_df.aio(raw)).equals(raw),
        "hash": produced.hash,
        "run_name": flyte.ctx().action.run_name,  # type: ignore[union-attr]
        "cache_hit": result1 == result2,
        "streamed_rows": await stream_rows(fdf),
        "nested": [
            await inner_model(MyModel(data=stored)),
            await inner_dataclass(MyDataclass(data=stored)),
            await inner_tuple((stored, "extra")),
            await inner_dict({"my_df": stored, "other": fdf}),
        ],
        "stored": stored,
    }
