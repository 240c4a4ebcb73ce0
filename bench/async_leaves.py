"""Async leaves that wait: N leaves each awaiting a sleep, under one gather, on ONE worker, against raw Celery.

    python bench/async_leaves.py [--n 20 1000] [--repeat 2] [--seconds 1.0] [--concurrency 2] [--timeout 120]
                                 [--raw-prefork-max-n 20] [--redis-db 11]

Sides, each with a worker of its own on a queue of its own (started and stopped by this script), all on Redis at
127.0.0.1:6379 DB --redis-db (broker and results, flushed at the start and the end):
  flyte-celery remote  a remote run whose root does `await asyncio.gather(*(sleeper(i, s) for i in range(n)))`, where
                       `sleeper` is an async task doing `await asyncio.sleep(s)`; timed from `.run()` to
                       `run.outputs()`. Worker: prefork -c --concurrency.
  flyte-celery hybrid  the same root with `with_runcontext(mode="hybrid")`: it runs in this process, its leaves on the
                       same worker; timed around `.run()`, which returns when the root is done.
  raw Celery prefork   `group(sleep.s(i, s) for i in range(n)).apply_async().join_native()` from this process; `sleep`
                       does `time.sleep(s)` and holds a pool slot for it, so this takes about n * s / c: it runs only
                       for n <= --raw-prefork-max-n (shown as n/a above). Worker: prefork -c --concurrency.
  raw Celery gevent    the same group on a `-P gevent -c 1000` worker, where `time.sleep` is monkeypatched and yields.
Every worker gets the flags of the other benchmarks (`--without-gossip --without-mingle --without-heartbeat -l
warning`, task events on); raw Celery gets flyte-celery's delivery settings (JSON, late acks, prefetch 1).

One warm-up of 2 leaves per side, then --repeat timed runs per N, the side going first alternating. A run that
passes --timeout is reported as `timeout`: it is aborted (raw Celery: its queue is purged), the worker is drained
(a probe round trip gets through) and the side's later runs at that N and above are skipped.

Target (from the issue): 1,000 leaves in under 3 s, at least as fast as the gevent pool.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import importlib.util
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

if not __package__:  # run as `python bench/async_leaves.py`: make `bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import flyte_celery as flyte
from bench._setup import REDIS_BASE_URL, add_redis_db_argument, flush_redis, positive_int, prepare_redis, print_header
from bench._table import MISSING, format_number, ratio, render_table
from bench._workers import WORKER_FLAGS, WorkerProcess, start_worker, wait_ready, worker_group
from bench.overhead import Stat, configure_client, flyte_env
from flyte_celery.errors import RunNotFoundError

TARGET_N: Final = 1000
TARGET_WALL_S: Final = 3.0
GEVENT_CONCURRENCY: Final = 1000
# kombu's Redis pool holds 10 connections by default; with late acks every greenlet acks at once (see _raw_app.py).
GEVENT_BROKER_MAX_CONNECTIONS: Final = GEVENT_CONCURRENCY + 100
WARM_UP_N: Final = 2
ABORT_DEADLINE_S: Final = 30.0  # for an aborted hybrid root to end in this process
REMOTE: Final = "flyte-celery remote"
HYBRID: Final = "flyte-celery hybrid"
RAW_PREFORK: Final = "raw Celery prefork"
RAW_GEVENT: Final = "raw Celery gevent"

# The flyte-celery program. Its code travels to the worker in the run's bundle (pickled by value).
env = flyte.TaskEnvironment("bench-async-leaves")


@env.task
async def sleeper(i: int, seconds: float) -> int:
    await asyncio.sleep(seconds)
    return i


@env.task
async def gather_sleepers(n: int, seconds: float) -> int:
    return sum(await asyncio.gather(*(sleeper(i, seconds) for i in range(n))))


@env.task
async def ping() -> int:
    return 1


def expected_sum(n: int) -> int:
    return n * (n - 1) // 2


# The sides. `measure` returns the wall time, or None when the run timed out (it is then aborted and drained).


class FlyteSide:
    """flyte-celery runs of `gather_sleepers` started from this process, in remote or hybrid mode."""

    max_n: int | None = None

    def __init__(self, name: str, mode: str, worker: WorkerProcess) -> None:
        self.name, self.mode, self.worker = name, mode, worker

    def new_probe(self) -> Callable[[float], bool]:
        """`probe(timeout)`: has one remote run of `ping` (started on the first call) succeeded yet?"""
        started: list[flyte.Run] = []

        def probe(timeout: float) -> bool:
            if not started:
                started.append(flyte.with_runcontext(mode="remote").run(ping))
            return started[0].wait(timeout=timeout) == flyte.ActionPhase.SUCCEEDED

        return probe

    def measure(self, n: int, seconds: float, timeout: float) -> float | None:
        start = time.perf_counter()
        if self.mode == "hybrid":
            value = asyncio.run(self._hybrid(n, seconds, timeout))
        else:
            run = flyte.with_runcontext(mode="remote").run(gather_sleepers, n, seconds)
            try:
                value = run.outputs(timeout=max(0.0, timeout - (time.perf_counter() - start))).o0
            except TimeoutError:
                run.abort("bench timeout")
                value = None
        elapsed = time.perf_counter() - start
        if value is None:
            return None
        if value != expected_sum(n):
            raise AssertionError(f"{self.name}: the root returned {value!r}, not the sum of 0..{n - 1}")
        return elapsed

    async def _hybrid(self, n: int, seconds: float, timeout: float) -> int | None:
        name = f"bench-leaves-{secrets.token_hex(8)}"
        runner = flyte.with_runcontext(mode="hybrid", name=name)
        root = asyncio.ensure_future(runner.run.aio(gather_sleepers, n, seconds))
        done, _ = await asyncio.wait({root}, timeout=timeout)
        if done:
            return int((await root.result().outputs.aio()).o0)
        # The abort reaches the root here (it raises ActionAbortedError) and the leaves on the worker.
        with contextlib.suppress(RunNotFoundError):  # no run record yet: the root never started
            await flyte.Run.get(name).abort.aio("bench timeout")
        await asyncio.wait({root}, timeout=ABORT_DEADLINE_S)
        root.cancel()
        with contextlib.suppress(BaseException):
            await root
        return None


class RawSide:
    """Raw Celery: groups of `bench_raw.sleep` sent from this process to one worker's queue."""

    def __init__(self, name: str, redis_url: str, queue: str, worker: WorkerProcess, max_n: int | None) -> None:
        from bench._raw_app import NOOP_TASK, SLEEP_TASK, make_raw_app

        self.name, self.worker, self.max_n = name, worker, max_n
        self.app = make_raw_app(redis_url, redis_url, queue)
        self.noop, self.sleep = self.app.tasks[NOOP_TASK], self.app.tasks[SLEEP_TASK]

    def new_probe(self) -> Callable[[float], bool]:
        """`probe(timeout)`: has one `noop` (sent on the first call) come back yet?"""
        from celery.exceptions import TimeoutError as CeleryTimeoutError

        sent: list[Any] = []

        def probe(timeout: float) -> bool:
            if not sent:
                sent.append(self.noop.delay(-1))
            try:
                sent[0].get(timeout=timeout)
            except CeleryTimeoutError:
                return False
            return True

        return probe

    def measure(self, n: int, seconds: float, timeout: float) -> float | None:
        from celery import group
        from celery.exceptions import TimeoutError as CeleryTimeoutError

        start = time.perf_counter()
        result = group(self.sleep.s(i, seconds) for i in range(n)).apply_async()
        try:
            values = result.join_native(timeout=timeout)
        except CeleryTimeoutError:
            self.app.control.purge()  # what the worker has not taken yet; what it has ends within `seconds`
            return None
        elapsed = time.perf_counter() - start
        if values != list(range(n)):
            raise AssertionError(f"{self.name}: the group returned {len(values)} values, not 0..{n - 1}")
        return elapsed

    def close(self) -> None:
        self.app.close()


Side = FlyteSide | RawSide


# Measuring.


@dataclass
class Cell:
    """One (N, side): the wall times of its runs that finished, how many timed out, and why it was not run."""

    walls_s: list[float] = field(default_factory=list)
    timeouts: int = 0
    skipped: str = ""

    @property
    def stat(self) -> Stat | None:
        return Stat.of(self.walls_s) if self.walls_s else None


def measure_all(sides: list[Side], args: argparse.Namespace) -> dict[tuple[int, str], Cell]:
    """`args.repeat` runs of every side at every N; fills in what it has so far if interrupted (Ctrl-C)."""
    cells = {(n, side.name): Cell() for n in args.n for side in sides}
    stopped: dict[str, str] = {}  # side -> why its later runs are skipped
    try:
        for side in sides:
            if side.measure(WARM_UP_N, args.seconds, args.timeout) is None:
                print(f"  warm-up  {side.name:<20} timeout after {args.timeout:g} s; draining...", flush=True)
                if not drained(side):
                    stopped[side.name] = "skipped: worker not drained after its warm-up timed out"
        for n in args.n:
            for index in range(args.repeat):
                for side in sides if index % 2 == 0 else sides[::-1]:
                    cell = cells[(n, side.name)]
                    if side.max_n is not None and n > side.max_n:
                        cell.skipped = f"n/a: N > {side.max_n}"
                    elif side.name in stopped:
                        cell.skipped = cell.skipped or stopped[side.name]
                    else:
                        run_once(side, n, cell, stopped, args)
    except KeyboardInterrupt:
        print("interrupted: the table shows what was measured so far", flush=True)
    return cells


def run_once(side: Side, n: int, cell: Cell, stopped: dict[str, str], args: argparse.Namespace) -> None:
    wall = side.measure(n, args.seconds, args.timeout)
    if wall is not None:
        cell.walls_s.append(wall)
        print(f"  N={n:<5} {side.name:<20} {wall:8.2f} s", flush=True)
        return
    cell.timeouts += 1
    stopped[side.name] = f"skipped: timed out at N={n}"
    print(f"  N={n:<5} {side.name:<20} timeout after {args.timeout:g} s; draining...", flush=True)
    if not drained(side):
        stopped[side.name] = "skipped: worker not drained after a timeout"


def drained(side: Side) -> bool:
    """Wait until a probe gets through the side's worker after an aborted run (False, said, if it does not)."""
    try:
        wait_ready([side.worker], side.new_probe(), f"{side.name} (draining after a timeout)")
    except RuntimeError as exc:
        print(f"  {side.name}: {exc}", flush=True)
        return False
    return True


# The report.


def report(cells: dict[tuple[int, str], Cell], sides: list[Side], args: argparse.Namespace) -> str:
    rows = []
    for n in args.n:
        gevent, prefork = cells[(n, RAW_GEVENT)].stat, cells[(n, RAW_PREFORK)].stat
        for side in sides:
            cell = cells[(n, side.name)]
            stat = cell.stat
            runs = len(cell.walls_s) + cell.timeouts
            status = cell.skipped if not runs else f"{len(cell.walls_s)}/{runs} ok"
            if cell.timeouts:
                status += f", {cell.timeouts} timeout (> {args.timeout:g} s)"
            if stat is None:
                no_wall = "timeout" if cell.timeouts else "n/a"
                rows.append([f"{n:,}", side.name, no_wall, no_wall, MISSING, MISSING, MISSING, status])
                continue
            rows.append([
                f"{n:,}", side.name, format_number(stat.best, 2), format_number(stat.median, 2),
                format_number(n / stat.best, 1),
                times(ratio(stat.best, gevent.best if gevent else None)),
                times(ratio(stat.best, prefork.best if prefork else None)),
                status,
            ])  # fmt: skip
    headers = ["N", "side", "wall best (s)", "wall median (s)", "leaves/s (best)", "vs gevent", "vs raw prefork",
               "runs"]  # fmt: skip
    return render_table(headers, rows, left_columns=2)


def times(value: float | None) -> str:
    """A wall-time ratio with two decimals (0.11x, not 0.1x: these go well below one)."""
    return MISSING if value is None else f"{value:.2f}x"


def target_lines(cells: dict[tuple[int, str], Cell], args: argparse.Namespace) -> list[str]:
    lines = [f"Target: {TARGET_N:,} leaves in under {TARGET_WALL_S:g} s, at least as fast as the gevent pool"]
    if TARGET_N not in args.n:
        return [*lines, f"  n/a: N={TARGET_N} was not measured (--n)"]
    gevent = cells[(TARGET_N, RAW_GEVENT)].stat
    gevent_text = f"gevent pool {format_number(gevent.best, 2)} s" if gevent else "gevent pool not measured"
    for name in (REMOTE, HYBRID):
        cell = cells[(TARGET_N, name)]
        stat = cell.stat
        if stat is None:
            why = f"timed out after {args.timeout:g} s" if cell.timeouts else cell.skipped or "not measured"
            lines.append(f"  {name}: {'FAIL' if cell.timeouts else 'n/a'} ({why}; {gevent_text})")
            continue
        fast = stat.best < TARGET_WALL_S and (gevent is None or stat.best <= gevent.best)
        lines.append(f"  {name}: {'PASS' if fast else 'FAIL'} (best {stat.best:.2f} s; {gevent_text})")
    return lines


# Main.


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=positive_int, nargs="+", default=[20, 1000], help="leaves per gather "
                        "(default 20 1000)")  # fmt: skip
    parser.add_argument("--repeat", type=positive_int, default=2, help="timed runs per N and side after a warm-up "
                        "(default 2)")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=1.0, help="each leaf's sleep (default 1.0)")
    parser.add_argument("--concurrency", type=positive_int, default=2, help="prefork pool size of the flyte-celery "
                        "and raw prefork workers (default 2)")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=120.0, help="per run, in seconds (default 120)")
    parser.add_argument("--raw-prefork-max-n", type=int, default=20, help="largest N run on raw prefork (default 20)")
    add_redis_db_argument(parser, 11)
    args = parser.parse_args(argv)
    if args.seconds < 0 or args.timeout <= 0:
        parser.error("--seconds must be at least 0 and --timeout above 0")
    args.n = sorted(set(args.n))
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if importlib.util.find_spec("gevent") is None:
        print("gevent is not installed (it is in the dev extras): pip install gevent", file=sys.stderr)
        return 2
    c, s = args.concurrency, args.seconds
    print_header(argv, "gevent", "greenlet")
    print(f"setup: N async leaves each sleeping {s:g} s under one gather; timeout {args.timeout:g} s per run")
    print(
        f"workers: one per side, each on its own queue, {' '.join(WORKER_FLAGS)}, task events on; flyte-celery "
        f"(remote and hybrid share it) and raw prefork: -P prefork -c {c}; raw gevent: -P gevent -c "
        f"{GEVENT_CONCURRENCY} (kombu Redis pool {GEVENT_BROKER_MAX_CONNECTIONS}); raw delivery settings as "
        "flyte-celery's app (JSON, acks_late, prefetch 1)"
    )
    print(
        f"raw prefork: measured for N <= {args.raw_prefork_max_n} only (--raw-prefork-max-n), n/a above: it holds a "
        f"slot per sleep, about N * {s:g} / {c} s (not measured, not extrapolated: {TARGET_N * s / c:g} s for "
        f"N = {TARGET_N:,})"
    )
    print(f"redis: {REDIS_BASE_URL}/{args.redis_db} (broker and results, flushed at start and end)")
    started = time.monotonic()
    try:
        redis_url = prepare_redis(args.redis_db)
    except RuntimeError as exc:
        print(f"cannot use Redis: {exc}", file=sys.stderr)
        return 2
    token = secrets.token_hex(3)
    flyte_queue, prefork_queue, gevent_queue = (f"bench-leaves-{kind}-{token}" for kind in ("flyte", "raw", "gevent"))
    configure_client(redis_url, flyte_queue, 0)

    def raw_env(queue: str) -> dict[str, str]:
        return {"BENCH_RAW_BROKER_URL": redis_url, "BENCH_RAW_BACKEND_URL": redis_url, "BENCH_RAW_QUEUE": queue}

    gevent_env = {**raw_env(gevent_queue), "BENCH_RAW_BROKER_MAX_CONNECTIONS": str(GEVENT_BROKER_MAX_CONNECTIONS)}

    raw_sides: list[RawSide] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-async-leaves-") as tmp:
            log_dir = Path(tmp)
            starts = [
                lambda: start_worker("flyte_celery.worker", flyte_queue, c, flyte_env(redis_url, flyte_queue), log_dir),
                lambda: start_worker("bench._raw_app", prefork_queue, c, raw_env(prefork_queue), log_dir),
                lambda: start_worker(
                    "bench._raw_app", gevent_queue, GEVENT_CONCURRENCY, gevent_env, log_dir, pool="gevent"
                ),
            ]
            with worker_group(starts) as (flyte_worker, prefork_worker, gevent_worker):
                raw_sides += [
                    RawSide(RAW_GEVENT, redis_url, gevent_queue, gevent_worker, None),
                    RawSide(RAW_PREFORK, redis_url, prefork_queue, prefork_worker, args.raw_prefork_max_n),
                ]
                sides: list[Side] = [
                    *raw_sides,
                    FlyteSide(REMOTE, "remote", flyte_worker),
                    FlyteSide(HYBRID, "hybrid", flyte_worker),
                ]
                for side in sides[:3]:  # the hybrid side shares the remote side's worker
                    wait_ready([side.worker], side.new_probe(), side.name)
                try:
                    cells = measure_all(sides, args)
                except Exception:
                    for worker in (flyte_worker, prefork_worker, gevent_worker):
                        print(f"--- log of worker {worker.name} (end) ---\n{worker.log_tail()}", file=sys.stderr)
                    raise
        print()
        print(report(cells, sides, args))
        print()
        print(
            f"Cells: best (median) over the runs that finished of {args.repeat} after one warm-up of {WARM_UP_N} "
            "leaves; leaves/s and ratios (wall time / the raw side's, same N) use the best. flyte-celery remote is "
            "timed from .run() to run.outputs(), hybrid around .run(); raw Celery around apply_async + join_native."
        )
        print("\n".join(target_lines(cells, args)))
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        print(f"total: {time.monotonic() - started:.1f} s; load at the end {load}")
    finally:
        for raw_side in raw_sides:
            raw_side.close()
        flush_redis(redis_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
