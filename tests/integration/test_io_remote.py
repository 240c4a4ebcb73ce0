"""Files across real workers: a File written by a task on one worker is read by a task on another worker and by
the client, in remote mode with the raw data path in a bucket of a real S3 server (moto's)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import flyte_celery as flyte
from flyte_celery.io import DataFrame, File
from tests._s3 import S3Server
from tests._workers import WorkerFactory
from tests.integration.programs import io_tasks

pytest_plugins = ["tests._s3"]

RUN_DEADLINE_S = 60.0


def _parent_pid(pid: int) -> int:
    # /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after its closing parenthesis.
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_file_crosses_workers_and_reaches_the_client(
    worker_factory: WorkerFactory, s3_env: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    reader = worker_factory.start(1, **s3_env.env())
    writer = worker_factory.start(1, "-Q", io_tasks.WRITER_QUEUE, **s3_env.env())
    raw = f"s3://{s3_bucket}/remote"
    run = flyte.with_runcontext(mode="remote", raw_data_path=raw).run(io_tasks.cross_worker, "across workers")
    assert run.wait(timeout=RUN_DEADLINE_S) == flyte.ActionPhase.SUCCEEDED, run.name
    file, writer_pid, content, reader_pid = run.outputs()
    assert content == "across workers"
    assert _parent_pid(writer_pid) == writer.process.pid, "the writer task ran on the writer queue's worker"
    assert _parent_pid(reader_pid) == reader.process.pid, "the reader task ran on the other worker"
    assert isinstance(file, File)
    assert file.path.startswith(f"{raw}/")
    with file.open_sync("rb") as stream:
        assert stream.read() == b"across workers"
    assert Path(file.download_sync(tmp_path / "copy.txt")).read_text() == "across workers"
    bucket, key = file.path.removeprefix("s3://").split("/", 1)
    assert s3_env.client().get_object(Bucket=bucket, Key=key)["Body"].read() == b"across workers"


def test_dirs_and_dataframes_made_on_a_worker_reach_the_client(
    worker_factory: WorkerFactory, s3_env: S3Server, s3_bucket: str
) -> None:
    worker_factory.start(2, **s3_env.env())
    raw = f"s3://{s3_bucket}/remote"
    options = flyte.with_runcontext(mode="remote", raw_data_path=raw)
    frame_run = options.run(io_tasks.make_frame, 3)
    dir_run = options.run(io_tasks.dir_round_trip, {"a.txt": "A", "sub/b.txt": "B"})
    assert frame_run.wait(timeout=RUN_DEADLINE_S) == flyte.ActionPhase.SUCCEEDED, frame_run.name
    assert dir_run.wait(timeout=RUN_DEADLINE_S) == flyte.ActionPhase.SUCCEEDED, dir_run.name
    frame = frame_run.outputs()[0]
    assert isinstance(frame, DataFrame)
    assert frame.uri is not None
    assert frame.uri.startswith(f"{raw}/")
    assert frame.open(pd.DataFrame).all_sync()["x"].tolist() == [0, 1, 2]
    walked = dir_run.outputs()[0][0]
    assert walked == {"a.txt": "A", "sub/b.txt": "B"}
