"""Big inputs and outputs travel through storage by reference: every Celery message and Redis record of a run
stays small whatever the data size (a Redis MONITOR sees every command), stored payloads are sealed for their run
and action, and Flyte's max_inline_io_bytes applies as in Flyte."""

from __future__ import annotations

import pickle
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import flyte_celery as flyte
from flyte_celery._signing import KeyRing
from flyte_celery.errors import RuntimeUserError, UnsafePayloadError
from tests._s3 import S3Server
from tests._workers import WorkerFactory
from tests.integration._raw_messages import marker_pickle
from tests.integration.programs import big_data

pytest_plugins = ["tests._s3"]
MAX_COMMAND_BYTES = 16 * 1024
HUNDRED_MB = 100 * 1024 * 1024
RUN_DEADLINE_S = 180.0


class CommandSizes:
    """Watches every command Redis runs on one DB (MONITOR) and keeps the biggest."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.db = self.client.connection_pool.connection_kwargs.get("db", 0)
        self.marker = f"stop-monitor-{secrets.token_hex(4)}"
        self.biggest = (0, "")
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "MONITOR did not start"

    def _watch(self) -> None:
        with self.client.monitor() as monitor:
            self.ready.set()
            while True:
                command = monitor.next_command()
                text = str(command.get("command", ""))
                if self.marker in text:
                    return
                if int(command.get("db", -1)) == self.db and len(text) > self.biggest[0]:
                    self.biggest = (len(text), text[:200])

    def stop(self) -> tuple[int, str]:
        self.client.echo(self.marker)
        self.thread.join(30)
        self.client.close()
        return self.biggest


@pytest.fixture
def command_sizes(redis_url: str) -> Iterator[CommandSizes]:
    sizes = CommandSizes(redis_url)
    yield sizes
    sizes.stop()


def _assert_small(sizes: CommandSizes) -> None:
    size, command = sizes.stop()
    assert size < MAX_COMMAND_BYTES, f"a Redis command of {size:,} bytes (messages and records too): {command}"


def test_a_100_mb_output_travels_through_local_storage(
    worker_factory: WorkerFactory, command_sizes: CommandSizes, tmp_path: Path
) -> None:
    worker_factory.start(concurrency=2)
    base = tmp_path / "metadata"
    run = flyte.with_runcontext(mode="remote", run_base_dir=str(base)).run(big_data.big_round_trip, HUNDRED_MB)
    assert run.outputs(timeout=RUN_DEADLINE_S).o0 == HUNDRED_MB + 255
    _assert_small(command_sizes)
    stored = {path.name for path in base.rglob("*.pkl")}
    assert stored == {"inputs.pkl", "outputs.pkl"}, stored  # the child's output, and the other child's input


def test_a_100_mb_output_travels_through_s3(
    worker_factory: WorkerFactory, command_sizes: CommandSizes, s3_env: S3Server, s3_bucket: str
) -> None:
    worker_factory.start(2, **s3_env.env())
    base = f"s3://{s3_bucket}/runs"
    run = flyte.with_runcontext(mode="remote", run_base_dir=base).run(big_data.big_round_trip, HUNDRED_MB)
    assert run.outputs(timeout=RUN_DEADLINE_S).o0 == HUNDRED_MB + 255
    _assert_small(command_sizes)
    keys = [item["Key"] for item in s3_env.client().list_objects_v2(Bucket=s3_bucket).get("Contents", [])]
    assert sorted(key.rsplit("/", 1)[1] for key in keys) == ["inputs.pkl", "outputs.pkl"], keys


@pytest.mark.parametrize("mode", ["remote", "hybrid"])
def test_a_big_root_output_is_read_back_by_the_client(
    mode: str, worker_factory: WorkerFactory, command_sizes: CommandSizes, tmp_path: Path
) -> None:
    worker_factory.start(concurrency=1)
    run = flyte.with_runcontext(mode=mode, run_base_dir=str(tmp_path)).run(big_data.produce, 5 * 1024 * 1024)
    assert run.outputs(timeout=RUN_DEADLINE_S).o0 == bytes(range(256)) * (5 * 1024 * 1024 // 256)
    assert flyte.Run.get(run.name).phase == flyte.ActionPhase.SUCCEEDED
    _assert_small(command_sizes)


def test_outputs_over_max_inline_io_bytes_fail_as_in_flyte(worker_factory: WorkerFactory, tmp_path: Path) -> None:
    worker_factory.start(concurrency=1)
    run = flyte.with_runcontext(mode="remote", run_base_dir=str(tmp_path)).run(big_data.over_the_limit, 11 * 2**20)
    with pytest.raises(RuntimeUserError) as caught:
        run.outputs(timeout=RUN_DEADLINE_S)
    assert caught.value.code == "InlineIOMaxBytesBreached"
    assert "max_inline_io_bytes" in str(caught.value)


def test_inputs_over_max_inline_io_bytes_fail_at_the_call(worker_factory: WorkerFactory, tmp_path: Path) -> None:
    worker_factory.start(concurrency=1)
    run = flyte.with_runcontext(mode="remote", run_base_dir=str(tmp_path)).run(
        big_data.calls_with_a_big_input, 11 * 2**20
    )
    with pytest.raises(RuntimeUserError) as caught:
        run.outputs(timeout=RUN_DEADLINE_S)
    assert caught.value.code == "InlineIOMaxBytesBreached"


def test_a_tampered_stored_output_is_refused_and_never_unpickled(
    worker_factory: WorkerFactory, tmp_path: Path, redis_client: Any
) -> None:
    worker_factory.start(concurrency=1)
    base = tmp_path / "metadata"
    run = flyte.with_runcontext(mode="remote", run_base_dir=str(base)).run(big_data.produce, 64 * 1024)
    assert len(run.outputs(timeout=RUN_DEADLINE_S).o0) == 64 * 1024
    (stored,) = base.rglob("outputs.pkl")
    marker = tmp_path / "unpickled"
    for forged in (
        marker_pickle(marker),
        KeyRing(b"another key").seal(marker_pickle(marker), "result", run.name, "a0"),
    ):
        stored.write_bytes(forged)
        with pytest.raises(UnsafePayloadError):
            flyte.Run.get(run.name).outputs(timeout=RUN_DEADLINE_S)
    assert not marker.exists()
    assert pickle  # the forged payloads are plain pickles, as an attacker would write them
