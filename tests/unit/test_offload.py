"""Which runs may use paths on this machine, and Flyte's max_inline_io_bytes."""

from __future__ import annotations

import pytest

from flyte_celery._celery.launcher import check_reachable, redis_is_local
from flyte_celery._celery.offload import breach
from flyte_celery._run_spec import RunSpec
from flyte_celery.errors import InlineIOMaxBytesBreached, RunOptionError


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("redis://127.0.0.1:6379/0", True),
        ("redis://localhost/2", True),
        ("redis://:pw@[::1]:6379", True),
        ("unix:///var/run/redis.sock?db=1", True),
        ("redis+sentinel://127.0.0.1:26379,localhost:26380/mymaster", True),
        ("redis://redis:6379/0", False),
        ("rediss://:secret@cache.example.com:6380", False),
        ("redis+sentinel://127.0.0.1:26379,sentinel-2:26379/mymaster", False),
    ],
)
def test_redis_on_this_machine(url: str, local: bool) -> None:
    assert redis_is_local(url) is local


def test_local_paths_are_refused_when_the_workers_may_be_elsewhere() -> None:
    spec = RunSpec(name="r", mode="remote", run_base_dir="/tmp/meta/r", raw_data_path="s3://bucket/raw/r")
    check_reachable(spec, "redis://127.0.0.1:6379/0")  # workers on this machine: fine
    with pytest.raises(RunOptionError) as caught:
        check_reachable(spec, "redis://:hunter2@redis.internal:6379/0")
    message = str(caught.value)
    assert caught.value.option == "run_base_dir"
    assert "/tmp/meta/r" in message
    assert "s3://" in message
    assert "hunter2" not in message
    check_reachable(RunSpec(name="r", mode="remote", run_base_dir="s3://b/m", raw_data_path="gs://b/r"), "redis://x")


def test_max_inline_io_bytes_as_in_flyte() -> None:
    assert breach(10, 10, "outputs of task 't'") is None
    error = breach(11, 10, "outputs of task 't'")
    assert isinstance(error, InlineIOMaxBytesBreached)
    assert error.code == "InlineIOMaxBytesBreached"
    assert "max_inline_io_bytes of 10" in str(error)
