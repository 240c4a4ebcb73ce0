"""File round trip through S3: flyte-celery tasks on a `celery worker` against plain s3fs, same server, same run.

    python bench/storage_roundtrip.py [--size-mb 1024] [--repeat 1] [--concurrency 2] [--redis-db 13]

The script starts moto's S3 server (`python -m moto.server`, in a process of its own on a free loopback port) and
a flyte-celery worker configured for it only through `FLYTE_CELERY_STORAGE_*` variables, on Redis at
127.0.0.1:6379 DB --redis-db (flushed at the start and at the end). It writes --size-mb of data to a local file
once, then moves it through the server four ways, each on both sides:

  upload, from_local    ours: a remote run of a task doing `await File.from_local(path)`.
                        s3fs: `fs.put_file(path, key)` in this process.
  upload, streamed      ours: a task doing `File.new_remote()` and `open("wb")`, writing 8 MiB chunks.
                        s3fs: `fs.open(key, "wb")`, the same chunks.
  download, read+hash   ours: another task (another run) reading the File with `open("rb")` in 8 MiB reads,
                        hashing them (SHA-256). s3fs: `fs.open(key, "rb")`, the same reads and hash.
  download, to disk     ours: a task doing `await file.download()`. s3fs: `fs.get_file(key, path)`.

Each side's bytes are checked (the SHA-256 of what was read, the size of what was downloaded). "in task" times
the storage call inside the task body (what the task's code waits for); "whole run" is the client's `.run()` to
`run.wait()` returning, with the Celery round trip and the run's records. MB/s are 10^6 bytes per second of the
best of --repeat runs (the two sides alternating), and the ratio is flyte-celery's in-task throughput over plain
s3fs's. Plain s3fs is `s3fs.S3FileSystem` with its defaults; flyte-celery uses the same s3fs with its bounded
timeouts and retries (`storage:` settings).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if not __package__:  # run as `python bench/storage_roundtrip.py`: make `bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import flyte_celery as flyte
from bench._setup import REDIS_BASE_URL, add_redis_db_argument, flush_redis, positive_int, prepare_redis, print_header
from bench._table import format_number, format_ratio, ratio, render_table
from bench._workers import WORKER_FLAGS, start_worker, wait_ready, worker_group
from bench.overhead import SIGNING_KEY
from flyte_celery.io import File

HOST = "127.0.0.1"
ACCESS_KEY = "bench-storage"
SECRET_KEY = "bench-storage-secret"
REGION = "us-east-1"
CHUNK_BYTES = 8 * 1024 * 1024
MB = 1_000_000
SERVER_START_DEADLINE_S = 30.0
RUN_DEADLINE_S = 1800.0
OURS = "flyte-celery"
PLAIN = "plain s3fs"

# The flyte-celery programs. Their code travels to the worker in the run's bundle (pickled by value).
env = flyte.TaskEnvironment("bench-storage")


def chunks(size: int) -> Iterator[bytes]:
    """`size` bytes as 8 MiB chunks of one pseudo-random block (incompressible, cheap to make)."""
    block = random.Random(0).randbytes(CHUNK_BYTES)
    left = size
    while left > 0:
        yield block[: min(left, CHUNK_BYTES)]
        left -= CHUNK_BYTES


@env.task
async def upload_from_local(path: str) -> tuple[File, float]:
    start = time.perf_counter()
    file = await File.from_local(path)
    return file, time.perf_counter() - start


@env.task
async def upload_streamed(size: int) -> tuple[File, float]:
    start = time.perf_counter()
    file = File.new_remote("streamed.bin")
    async with file.open("wb") as stream:
        for chunk in chunks(size):
            await stream.write(chunk)
    return file, time.perf_counter() - start


@env.task
async def read_and_hash(file: File) -> tuple[str, float]:
    start = time.perf_counter()
    digest = hashlib.sha256()
    async with file.open("rb") as stream:
        while chunk := await stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest(), time.perf_counter() - start


@env.task
async def download_to_disk(file: File) -> tuple[int, float]:
    start = time.perf_counter()
    local = await file.download()
    elapsed = time.perf_counter() - start
    size = os.path.getsize(local)  # noqa: ASYNC240
    os.unlink(local)
    return size, elapsed


@env.task
async def ping() -> int:
    return 1


# The S3 server.


@contextlib.contextmanager
def moto_server(log_dir: Path) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port = int(sock.getsockname()[1])
    log = (log_dir / "moto.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        end = time.monotonic() + SERVER_START_DEADLINE_S
        while not _port_open(port):
            if process.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"moto.server did not start on {HOST}:{port}: {(log_dir / 'moto.log').read_text()}")
            time.sleep(0.1)
        yield f"http://{HOST}:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def storage_env(endpoint: str) -> dict[str, str]:
    return {
        "FLYTE_CELERY_STORAGE_ENDPOINT_URL": endpoint,
        "FLYTE_CELERY_STORAGE_ACCESS_KEY_ID": ACCESS_KEY,
        "FLYTE_CELERY_STORAGE_SECRET_ACCESS_KEY": SECRET_KEY,
        "FLYTE_CELERY_STORAGE_REGION": REGION,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


# The two sides.


class Measured:
    """The best times of one operation on one side: inside the task (or the s3fs call) and of the whole run."""

    def __init__(self) -> None:
        self.inner: list[float] = []
        self.whole: list[float] = []

    def add(self, inner: float, whole: float) -> None:
        self.inner.append(inner)
        self.whole.append(whole)

    def mbps(self, size: int, whole: bool = False) -> float | None:
        times = self.whole if whole else self.inner
        return size / MB / min(times) if times else None


def run_remote(task: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    run = flyte.with_runcontext(mode="remote").run(task, *args)
    phase = run.wait(timeout=RUN_DEADLINE_S)
    elapsed = time.perf_counter() - start
    if phase != flyte.ActionPhase.SUCCEEDED:
        try:
            run.outputs()
        except Exception as exc:
            raise AssertionError(f"run {run.name} of {task.name} ended {phase}: {type(exc).__name__}: {exc}") from exc
        raise AssertionError(f"run {run.name} of {task.name} is {phase} after {RUN_DEADLINE_S:g} s")
    return tuple(run.outputs()), elapsed


def flyte_round(path: str, size: int, expected: str, results: dict[tuple[str, str], Measured]) -> None:
    (file, inner), whole = run_remote(upload_from_local, path)
    results["upload, from_local", OURS].add(inner, whole)
    (streamed, inner), whole = run_remote(upload_streamed, size)
    results["upload, streamed", OURS].add(inner, whole)
    for uploaded in (file, streamed):
        (digest, inner), whole = run_remote(read_and_hash, uploaded)
        if digest != expected:
            raise AssertionError(f"{OURS} read back {uploaded.path} with SHA-256 {digest}, expected {expected}")
        results["download, read+hash", OURS].add(inner, whole)
    (got, inner), whole = run_remote(download_to_disk, file)
    if got != size:
        raise AssertionError(f"{OURS} downloaded {got} bytes of {file.path}, expected {size}")
    results["download, to disk", OURS].add(inner, whole)


def plain_round(fs: Any, bucket: str, path: str, size: int, expected: str, results: dict[Any, Measured]) -> None:
    key = f"{bucket}/plain/{secrets.token_hex(8)}"
    results["upload, from_local", PLAIN].add(*_twice(timed(lambda: fs.put_file(path, key))))

    def streamed() -> None:
        with fs.open(f"{key}-streamed", "wb") as stream:
            for chunk in chunks(size):
                stream.write(chunk)

    results["upload, streamed", PLAIN].add(*_twice(timed(streamed)))
    for name in (key, f"{key}-streamed"):

        def read(name: str = name) -> str:
            digest = hashlib.sha256()
            with fs.open(name, "rb") as stream:
                while chunk := stream.read(CHUNK_BYTES):
                    digest.update(chunk)
            return digest.hexdigest()

        start = time.perf_counter()
        digest = read()
        elapsed = time.perf_counter() - start
        if digest != expected:
            raise AssertionError(f"{PLAIN} read back {name} with SHA-256 {digest}, expected {expected}")
        results["download, read+hash", PLAIN].add(elapsed, elapsed)
    with tempfile.TemporaryDirectory(prefix="bench-storage-get-") as tmp:
        local = os.path.join(tmp, "copy.bin")
        elapsed = timed(lambda: fs.get_file(key, local))
        if os.path.getsize(local) != size:
            raise AssertionError(f"{PLAIN} downloaded {os.path.getsize(local)} bytes of {key}, expected {size}")
    results["download, to disk", PLAIN].add(elapsed, elapsed)
    fs.rm([key, f"{key}-streamed"])


def timed(operation: Callable[[], Any]) -> float:
    start = time.perf_counter()
    operation()
    return time.perf_counter() - start


def _twice(value: float) -> tuple[float, float]:
    return value, value


def write_source(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for chunk in chunks(size):
            out.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def report(results: dict[tuple[str, str], Measured], size: int) -> str:
    rows = []
    for operation in ("upload, from_local", "upload, streamed", "download, read+hash", "download, to disk"):
        ours, plain = results[operation, OURS], results[operation, PLAIN]
        ours_mbps, plain_mbps = ours.mbps(size), plain.mbps(size)
        rows.append(
            [
                operation,
                format_number(ours_mbps),
                format_number(ours.mbps(size, whole=True)),
                format_number(plain_mbps),
                format_ratio(ratio(ours_mbps, plain_mbps)),
            ]
        )
    headers = ["operation", f"{OURS} MB/s (in task)", f"{OURS} MB/s (whole run)", f"{PLAIN} MB/s", "ours / s3fs"]
    return render_table(headers, rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=positive_int, default=1024, help="MiB moved each way (default 1024)")
    parser.add_argument("--repeat", type=positive_int, default=1, help="timed rounds per side, alternating "
                        "(default 1)")  # fmt: skip
    parser.add_argument("--concurrency", type=positive_int, default=2, help="the worker's -c (default 2)")
    add_redis_db_argument(parser, 13)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import boto3
    import s3fs

    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    size = args.size_mb * 1024 * 1024
    print_header(argv, "s3fs", "moto")
    print(f"worker: prefork -c {args.concurrency}, {' '.join(WORKER_FLAGS)}; redis: {REDIS_BASE_URL}/{args.redis_db}")
    started = time.monotonic()
    try:
        redis_url = prepare_redis(args.redis_db)
    except RuntimeError as exc:
        print(f"cannot use Redis: {exc}", file=sys.stderr)
        return 2
    queue = f"bench-storage-{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp, moto_server(Path(tmp)) as endpoint:
        log_dir = Path(tmp)
        bucket = f"bench-{secrets.token_hex(4)}"
        boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        ).create_bucket(Bucket=bucket)  # fmt: skip
        print(f"s3: moto.server at {endpoint}, bucket {bucket}; {args.size_mb} MiB ({size / MB:,.0f} MB) each way")
        cluster = {
            "FLYTE_CELERY_BROKER_URL": redis_url,
            "FLYTE_CELERY_REDIS_URL": redis_url,
            "FLYTE_CELERY_RUN_QUEUE": queue,
            "FLYTE_CELERY_SECURITY_SIGNING_KEY": SIGNING_KEY,
            "FLYTE_CELERY_RUN_RAW_DATA_PATH": f"s3://{bucket}/raw",
            "FLYTE_CELERY_RUN_RUN_BASE_DIR": f"s3://{bucket}/metadata",
            **storage_env(endpoint),
        }
        os.environ.update(cluster)
        flyte.init_from_config(log_level=logging.WARNING)
        fs = s3fs.S3FileSystem(
            key=ACCESS_KEY, secret=SECRET_KEY, endpoint_url=endpoint, client_kwargs={"region_name": REGION}
        )
        source = log_dir / "source.bin"
        expected = write_source(source, size)
        results = {(operation, side): Measured() for operation in (
            "upload, from_local", "upload, streamed", "download, read+hash", "download, to disk"
        ) for side in (OURS, PLAIN)}  # fmt: skip
        try:
            start = lambda: start_worker("flyte_celery.worker", queue, args.concurrency, cluster, log_dir)  # noqa: E731
            with worker_group([start]) as workers:
                probe: Any = None

                def ready(timeout: float) -> bool:
                    nonlocal probe
                    probe = probe or flyte.with_runcontext(mode="remote").run(ping)
                    return bool(probe.wait(timeout=timeout) == flyte.ActionPhase.SUCCEEDED)

                wait_ready(workers, ready, OURS)
                try:
                    for _ in range(args.repeat):
                        flyte_round(str(source), size, expected, results)
                        plain_round(fs, bucket, str(source), size, expected, results)
                except Exception:
                    for worker in workers:
                        print(f"--- log of worker {worker.name} (end) ---\n{worker.log_tail()}", file=sys.stderr)
                    raise
        finally:
            flush_redis(redis_url)
        print()
        print(report(results, size))
        print()
        print(
            f"MB/s: 10^6 bytes per second, best of {args.repeat} round(s) ({OURS}: in the task body, and from "
            f"`.run()` to the run's end; {PLAIN}: the call in this process). read+hash counts both uploaded "
            "objects. Both sides go through the same moto server, which is the bottleneck of every row."
        )
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        print(f"total: {time.monotonic() - started:.1f} s; load at the end {load}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
