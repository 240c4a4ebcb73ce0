"""Remote-mode overhead: flyte-celery on `celery worker` processes against raw Celery, measured in the same run.

    python bench/overhead.py [--n 1000] [--chain 100] [--repeat 3] [--concurrency 2] [--redis-db 14] [--profile]

Both sides run on Redis at 127.0.0.1:6379 (broker and results) on DB --redis-db, flushed at the start and at the
end, with workers this script starts and stops itself, with the same flags: prefork, `-c --concurrency`,
`--without-gossip --without-mingle --without-heartbeat -l warning`, task events on (flyte-celery's app sends them
by default; the raw worker gets `-E` and its app `task_send_sent_event=True`).

Scenarios (every task body is a no-op, so what is left is the framework's cost):
  fan-out  raw: `group(noop.s(i) for i in range(n)).apply_async().join_native()` from this process.
           flyte-celery: one remote run whose root does `await asyncio.gather(*(noop(i) for i in range(n)))`,
           timed from `.run()` to `run.wait()` returning succeeded. Cost per task = wall time / n (for
           flyte-celery that includes the root action). Target: at most 1.0x raw Celery per task.
  chain    raw: `noop.delay(i).get()` from this process, `--chain` times in a row, each round trip timed.
           flyte-celery: a remote root doing `for i in range(chain): await noop(i)`, timing each await with
           `time.perf_counter()` inside the root and returning the durations. Target: p50 at most raw Celery's.

Each measurement has one warm-up run, then --repeat timed runs, the two sides alternating; cells show the best
and, in brackets, the median of the repeats, and ratios and verdicts use the best. CPU rows add up the user and
system time of the side's worker processes (from /proc) and of this client over each timed run: on a small shared
machine they move much less from run to run than wall times do.

Raw Celery gets flyte-celery's delivery settings (JSON, late acks, prefetch 1) unless --raw-stock-settings.
--flyte-redis-max-connections N puts a pool limit in flyte-celery's Redis URL (default: none, flyte-celery's own
bounded pool, where waiters queue for a connection).

When flyte-celery misses a target (or with --profile) the flyte-celery side is run again on instrumented workers
(this script with `--celery-worker`, which patches timestamps and cProfile into `celery -A flyte_celery.worker`
before it starts; flyte_celery itself is not modified): a timeline of one sequential child round trip, then the
hottest functions (thread CPU time) of the workers' pool processes, for the chain and for a fan-out of at most
200 (a 1,000-wide gather opens about a thousand Redis connections at once, which under cProfile can time out).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import logging
import math
import os
import pstats
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if not __package__:  # run as `python bench/overhead.py`: make `bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import flyte_celery as flyte
from bench._setup import REDIS_BASE_URL, add_redis_db_argument, flush_redis, positive_int, prepare_redis, print_header
from bench._table import MISSING, format_number, format_ratio, ratio, render_table
from bench._workers import REPO_ROOT, WORKER_FLAGS, WorkerProcess, start_worker, wait_ready, worker_group

SIGNING_KEY = "flyte-celery-bench-signing-key"
FAN_OUT_TARGET_RATIO = 1.0  # flyte-celery's cost per task / raw Celery's, at most (issue #8)
CHAIN_TARGET_RATIO = 1.0  # flyte-celery's sequential child round trip p50 / raw Celery's delay().get(), at most
RUN_DEADLINE_S = 120.0
TRACE_DIR_ENV = "BENCH_OVERHEAD_TRACE_DIR"
CPROFILE_DIR_ENV = "BENCH_OVERHEAD_CPROFILE_DIR"
PROFILE_TOP_N = 25
PROFILED_FAN_OUT_MAX = 200
RAW = "raw Celery"
OURS = "flyte-celery"

# The flyte-celery programs. Their code travels to the workers in the run's bundle (pickled by value).
env = flyte.TaskEnvironment("bench-overhead")


@env.task
async def noop(i: int) -> int:
    return i


@env.task
async def fan_out(n: int) -> int:
    results = await asyncio.gather(*(noop(i) for i in range(n)))
    return len(results)


@env.task
async def chain(n: int) -> list[float]:
    durations = []
    for i in range(n):
        start = time.perf_counter()
        await noop(i)
        durations.append(time.perf_counter() - start)
    return durations


@env.task
async def ping() -> int:
    return 1


# Worker processes.


# The two sides.


class RawSide:
    """Raw Celery driven from this process: `bench._raw_app` with a Redis result backend."""

    def __init__(self, redis_url: str, queue: str, stock: bool) -> None:
        from bench._raw_app import NOOP_TASK, make_raw_app

        self.app = make_raw_app(redis_url, redis_url, queue, stock=stock)
        self.noop = self.app.tasks[NOOP_TASK]
        self._probe: Any = None

    def probe(self, timeout: float) -> bool:
        from celery.exceptions import TimeoutError as CeleryTimeoutError

        if self._probe is None:
            self._probe = self.noop.delay(-1)  # one probe message, however long the worker takes to come up
        try:
            self._probe.get(timeout=timeout)
        except CeleryTimeoutError:
            return False
        return True

    def fan_out(self, n: int) -> float:
        from celery import group

        start = time.perf_counter()
        result = group(self.noop.s(i) for i in range(n)).apply_async()
        values = result.join_native(timeout=RUN_DEADLINE_S)
        elapsed = time.perf_counter() - start
        if values != list(range(n)):
            raise AssertionError(f"raw fan-out returned {len(values)} values, not 0..{n - 1}")
        return elapsed

    def chain(self, length: int) -> tuple[list[float], float]:
        durations = []
        begin = time.perf_counter()
        for i in range(length):
            start = time.perf_counter()
            value = self.noop.delay(i).get(timeout=RUN_DEADLINE_S)
            durations.append(time.perf_counter() - start)
            if value != i:
                raise AssertionError(f"raw noop({i}) returned {value!r}")
        return durations, time.perf_counter() - begin

    def close(self) -> None:
        self.app.close()


class FlyteSide:
    """flyte-celery remote runs started from this process (configured by `FLYTE_CELERY_*` in os.environ)."""

    def __init__(self) -> None:
        self._probe: Any = None

    def probe(self, timeout: float) -> bool:
        if self._probe is None:
            self._probe = flyte.with_runcontext(mode="remote").run(ping)
        return bool(self._probe.wait(timeout=timeout) == flyte.ActionPhase.SUCCEEDED)

    def _run(self, root: Any, arg: int) -> tuple[Any, float]:
        start = time.perf_counter()
        run = flyte.with_runcontext(mode="remote").run(root, arg)
        phase = run.wait(timeout=RUN_DEADLINE_S)
        elapsed = time.perf_counter() - start
        if phase != flyte.ActionPhase.SUCCEEDED:
            why = f"still {phase} after {RUN_DEADLINE_S:g} s" if not phase.is_terminal else f"ended {phase}"
            if phase.is_terminal:
                try:
                    run.outputs()
                except Exception as exc:
                    why += f": {type(exc).__name__}: {exc}"
            raise AssertionError(f"run {run.name} of {root.name}({arg}) {why}")
        return run.outputs().o0, elapsed

    def fan_out(self, n: int) -> float:
        value, elapsed = self._run(fan_out, n)
        if value != n:
            raise AssertionError(f"fan-out root returned {value!r}, expected {n}")
        return elapsed

    def chain(self, length: int) -> tuple[list[float], float]:
        durations, elapsed = self._run(chain, length)
        if len(durations) != length:
            raise AssertionError(f"chain root returned {len(durations)} durations, expected {length}")
        return list(durations), elapsed


@dataclass
class Measurements:
    """Everything one side measured: per run its wall time and CPU time (its workers + this client), and per
    chain run its round trips."""

    fan_out_s: list[float] = field(default_factory=list)
    fan_out_cpu_s: list[float] = field(default_factory=list)
    chain_round_trips_s: list[list[float]] = field(default_factory=list)
    chain_wall_s: list[float] = field(default_factory=list)
    chain_cpu_s: list[float] = field(default_factory=list)


@contextlib.contextmanager
def cpu_meter(workers: list[WorkerProcess]) -> Iterator[list[float]]:
    """Yields a list that holds, once the block ends, the CPU seconds the workers and this process used in it."""
    spent: list[float] = []
    before = sum(worker.cpu_s() for worker in workers) + time.process_time()
    yield spent
    spent.append(sum(worker.cpu_s() for worker in workers) + time.process_time() - before)


def measure(
    sides: dict[str, Any], workers: dict[str, list[WorkerProcess]], n: int, length: int, repeat: int
) -> dict[str, Measurements]:
    """One warm-up of each scenario per side, then `repeat` timed runs, the side going first alternating."""
    results = {name: Measurements() for name in sides}
    names = list(sides)
    for name in names:
        sides[name].fan_out(n)
        sides[name].chain(length)
    for index in range(repeat):
        order = names if index % 2 == 0 else names[::-1]
        for name in order:
            with cpu_meter(workers[name]) as cpu:
                results[name].fan_out_s.append(sides[name].fan_out(n))
            results[name].fan_out_cpu_s += cpu
        for name in order:
            with cpu_meter(workers[name]) as cpu:
                durations, wall = sides[name].chain(length)
            results[name].chain_cpu_s += cpu
            results[name].chain_round_trips_s.append(durations)
            results[name].chain_wall_s.append(wall)
    return results


# Statistics and the report.


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Stat:
    """The best (lowest) and median of one metric over the repeats."""

    best: float
    median: float

    @staticmethod
    def of(values: list[float]) -> Stat:
        return Stat(min(values), statistics.median(values))

    def scaled(self, factor: float) -> Stat:
        return Stat(self.best * factor, self.median * factor)

    def cell(self, digits: int) -> str:
        return f"{format_number(self.best, digits)} ({format_number(self.median, digits)})"


def at_most(value: float | None, limit: float) -> str:
    if value is None:
        return "n/a"
    return "PASS" if value <= limit else "FAIL"


@dataclass(frozen=True)
class Verdicts:
    fan_out_ratio: float | None
    chain_ratio: float | None

    @property
    def fan_out_passes(self) -> bool:
        return self.fan_out_ratio is not None and self.fan_out_ratio <= FAN_OUT_TARGET_RATIO

    @property
    def chain_passes(self) -> bool:
        return self.chain_ratio is not None and self.chain_ratio <= CHAIN_TARGET_RATIO


def report(results: dict[str, Measurements], n: int, length: int) -> tuple[str, Verdicts]:
    raw, ours = results[RAW], results[OURS]
    rows: list[list[str]] = []

    def row(label: str, theirs: Stat, mine: Stat, digits: int, target: str = MISSING, verdict: str = MISSING) -> None:
        rows.append([label, theirs.cell(digits), mine.cell(digits), format_ratio(ratio(mine.best, theirs.best)), target,
                     verdict])  # fmt: skip

    raw_fan, our_fan = Stat.of(raw.fan_out_s), Stat.of(ours.fan_out_s)
    fan_ratio = ratio(our_fan.best, raw_fan.best)
    row(f"fan-out x{n}: wall (s)", raw_fan, our_fan, 2)
    row(
        f"fan-out x{n}: per task (µs)",
        raw_fan.scaled(1e6 / n),
        our_fan.scaled(1e6 / n),
        0,
        f"<= {FAN_OUT_TARGET_RATIO:g}x raw",
        at_most(fan_ratio, FAN_OUT_TARGET_RATIO),
    )
    row(
        f"fan-out x{n}: CPU per task (µs)",
        Stat.of(raw.fan_out_cpu_s).scaled(1e6 / n),
        Stat.of(ours.fan_out_cpu_s).scaled(1e6 / n),
        0,
    )
    raw_p50 = Stat.of([percentile(run, 50) * 1e3 for run in raw.chain_round_trips_s])
    our_p50 = Stat.of([percentile(run, 50) * 1e3 for run in ours.chain_round_trips_s])
    raw_p95 = Stat.of([percentile(run, 95) * 1e3 for run in raw.chain_round_trips_s])
    our_p95 = Stat.of([percentile(run, 95) * 1e3 for run in ours.chain_round_trips_s])
    row(
        f"chain x{length}: round trip p50 (ms)",
        raw_p50,
        our_p50,
        2,
        f"<= {CHAIN_TARGET_RATIO:g}x raw",
        at_most(ratio(our_p50.best, raw_p50.best), CHAIN_TARGET_RATIO),
    )
    row(f"chain x{length}: round trip p95 (ms)", raw_p95, our_p95, 2)
    row(
        f"chain x{length}: wall (ms)",
        Stat.of([wall * 1e3 for wall in raw.chain_wall_s]),
        Stat.of([wall * 1e3 for wall in ours.chain_wall_s]),
        1,
    )
    row(
        f"chain x{length}: CPU per round trip (µs)",
        Stat.of(raw.chain_cpu_s).scaled(1e6 / length),
        Stat.of(ours.chain_cpu_s).scaled(1e6 / length),
        0,
    )
    headers = ["scenario", RAW, OURS, f"ratio ({OURS}/raw)", "target", "PASS/FAIL"]
    table = render_table(headers, rows)
    return table, Verdicts(fan_ratio, ratio(our_p50.best, raw_p50.best))


# Redis.


def flyte_redis_url(redis_url: str, max_connections: int) -> str:
    """flyte-celery's Redis URL, with a pool limit when one is asked for (redis-py reads it from the query)."""
    return f"{redis_url}?max_connections={max_connections}" if max_connections > 0 else redis_url


def flyte_env(redis_url: str, queue: str, max_connections: int = 0) -> dict[str, str]:
    return {
        "FLYTE_CELERY_BROKER_URL": redis_url,
        "FLYTE_CELERY_REDIS_URL": flyte_redis_url(redis_url, max_connections),
        "FLYTE_CELERY_RUN_QUEUE": queue,
        "FLYTE_CELERY_SECURITY_SIGNING_KEY": SIGNING_KEY,
    }


def raw_env(redis_url: str, queue: str, stock: bool) -> dict[str, str]:
    return {
        "BENCH_RAW_BROKER_URL": redis_url,
        "BENCH_RAW_BACKEND_URL": redis_url,
        "BENCH_RAW_QUEUE": queue,
        "BENCH_RAW_STOCK": "1" if stock else "0",
    }


def configure_client(redis_url: str, queue: str, max_connections: int) -> None:
    os.environ.update(flyte_env(redis_url, queue, max_connections))
    flyte.init_from_config(log_level=logging.WARNING)


# Instrumented flyte-celery workers (`--celery-worker`): hooks patched in before Celery starts, in this script only.


class _TraceLog:
    """Timestamped events of this process, written to `<dir>/trace-<pid>.jsonl` when the process shuts down."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self.events: list[list[Any]] = []
        self.pid = os.getpid()

    def add(self, event: str, run: str, action: str, start: float, end: float | None = None) -> None:
        if os.getpid() != self.pid:  # a forked pool process starts a log of its own
            self.events, self.pid = [], os.getpid()
        self.events.append([event, run, action, start, end])

    def flush(self) -> None:
        if self.events and os.getpid() == self.pid:
            with (self.directory / f"trace-{self.pid}.jsonl").open("a") as out:
                out.writelines(json.dumps(event) + "\n" for event in self.events)
            self.events = []


def _patch(target: Any, name: str, replacement: Callable[[Callable[..., Any]], Any]) -> None:
    """Replace `target.name` by `replacement(original)`."""
    setattr(target, name, replacement(getattr(target, name)))


def _install_trace_hooks(log: _TraceLog) -> None:
    """Wrap the steps of a child round trip (parent and child side) to record when each starts and ends."""
    from celery import signals

    from flyte_celery._celery import (
        action_host,
        guarded_consumer,
        publisher,
        reply_channel,
        runtime,
        start_checks,
        task_body,
    )
    from flyte_celery._celery.envelope import HEADER
    from flyte_celery._controllers import shared

    now = time.monotonic

    def trace_prepare(prepare: Callable[..., Any]) -> Callable[..., Any]:
        def traced(frame: Any, *args: Any, **kwargs: Any) -> Any:
            start = now()
            call = prepare(frame, *args, **kwargs)
            log.add("prepare_child_call", frame.run.name, call.action.name, start, now())
            return call

        return traced

    _patch(shared, "prepare_child_call", trace_prepare)

    def wrap_async(cls: Any, method: str, event: str, names: Callable[..., tuple[str, str]]) -> None:
        def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
            async def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
                start = now()
                try:
                    return await original(self, *args, **kwargs)
                finally:
                    log.add(event, *names(*args, **kwargs), start, now())

            return traced

        _patch(cls, method, wrap)

    def of_publication(publication: Any, *_: Any, **__: Any) -> tuple[str, str]:
        return publication.envelope.run.name, publication.envelope.action.name

    def of_envelope(envelope: Any, *_: Any, **__: Any) -> tuple[str, str]:
        return envelope.run.name, envelope.action.name

    def of_run_action(run: str, action: str, *_: Any, **__: Any) -> tuple[str, str]:
        return run, action

    wrap_async(runtime.Runtime, "wait_for", "Runtime.wait_for", of_run_action)
    wrap_async(runtime.Runtime, "_attach_publishing", "Runtime._attach_publishing", of_run_action)
    wrap_async(publisher.Publisher, "publish", "Publisher.publish", of_publication)
    wrap_async(runtime.Runtime, "complete", "Runtime.complete", of_run_action)
    wrap_async(action_host.ActionHost, "run", "ActionHost.run", of_envelope)

    def trace_publish_batch(publish_batch: Callable[..., None]) -> Callable[..., None]:
        def traced(self: Any, batch: list[Any]) -> None:
            start = now()
            try:
                publish_batch(self, batch)
            finally:
                end = now()
                for publication in batch:
                    log.add("Publisher._publish_batch", *of_publication(publication), start, end)

        return traced

    _patch(publisher.Publisher, "_publish_batch", trace_publish_batch)

    def trace_start_checks(check: Callable[..., Any]) -> Callable[..., Any]:
        def traced(self: Any, run: str, action: str, *args: Any) -> Any:
            start = now()
            try:
                return check(self, run, action, *args)
            finally:
                log.add("StartChecks.check", run, action, start, now())

        return traced

    _patch(start_checks.StartChecks, "check", trace_start_checks)

    def trace_execute(execute: Callable[..., Any]) -> Callable[..., Any]:
        async def traced(call: Any, spec: Any, *args: Any) -> Any:
            start = now()
            try:
                return await execute(call, spec, *args)
            finally:
                log.add("execute_action", spec.name, call.action.name, start, now())

        return traced

    _patch(action_host, "execute_action", trace_execute)

    def trace_body(body: Callable[..., Any]) -> Callable[..., Any]:
        def traced(task: Any, *args: Any, **kwargs: Any) -> Any:
            start = now()
            try:
                return body(task, *args, **kwargs)
            finally:
                raw = getattr(task.request, HEADER, None) or (task.request.headers or {}).get(HEADER) or "{}"
                envelope = json.loads(raw)
                log.add("run_action_body", envelope["run"]["name"], envelope["action"]["name"], start, now())

        return traced

    _patch(task_body, "run_action_body", trace_body)  # the entry task looks it up at every call (app.py)

    class TracedWaiting(defaultdict):  # type: ignore[type-arg]
        """The reply channel's waiting table: `pop` is when a finished action's notification arrived."""

        def pop(self, key: Any, *default: Any) -> Any:
            if key in self:
                run, _, action = str(key).rpartition(":")
                log.add("notification", run, action, now())
            return super().pop(key, *default)

    def trace_init(channel_init: Callable[..., None]) -> Callable[..., None]:
        def traced(self: Any, *args: Any, **kwargs: Any) -> None:
            channel_init(self, *args, **kwargs)
            self._waiting = TracedWaiting(list)

        return traced

    _patch(reply_channel.ReplyChannel, "__init__", trace_init)

    def trace_gate(gate_call: Callable[..., None]) -> Callable[..., None]:
        def traced(self: Any, message: Any) -> None:
            start = now()
            try:
                gate_call(self, message)
            finally:
                task_id = str((message.headers or {}).get("id", ""))
                log.add("celery:message gate start", "", task_id, start)
                log.add("celery:message gate end", "", task_id, now())

        return traced

    _patch(guarded_consumer.MessageGate, "__call__", trace_gate)

    def on_received(request: Any = None, **_: Any) -> None:
        log.add("celery:task_received", "", str(request.id), now())

    def on_prerun(task_id: str = "", **_: Any) -> None:
        log.add("celery:task_prerun", "", task_id, now())

    def on_postrun(task_id: str = "", **_: Any) -> None:
        log.add("celery:task_postrun", "", task_id, now())

    signals.task_received.connect(on_received, weak=False)
    signals.task_prerun.connect(on_prerun, weak=False)
    signals.task_postrun.connect(on_postrun, weak=False)
    signals.worker_process_shutdown.connect(lambda **_: log.flush(), weak=False)
    signals.worker_shutdown.connect(lambda **_: log.flush(), weak=False)


class _ProcessProfiles:
    """cProfile of a pool process: its main thread (task bodies), its loop thread, and the publish threads."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self.main = self.new_profile()
        self.loop_profile = self.new_profile()
        self.local = threading.local()
        self.others: list[cProfile.Profile] = []

    @staticmethod
    def new_profile() -> cProfile.Profile:
        return cProfile.Profile(time.thread_time)  # CPU time of the thread: its waits (GIL, I/O, locks) count zero

    def thread_profile(self) -> cProfile.Profile:
        profile: cProfile.Profile | None = getattr(self.local, "profile", None)
        if profile is None:
            profile = self.local.profile = self.new_profile()
            self.others.append(profile)
        return profile

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.main.enable()
        loop.call_soon_threadsafe(self.loop_profile.enable)

    def dump(self, loop: asyncio.AbstractEventLoop) -> None:
        pid = os.getpid()
        self.main.disable()
        self.main.dump_stats(self.directory / f"main-{pid}.prof")
        done = threading.Event()

        def dump_loop() -> None:
            self.loop_profile.disable()  # in the loop thread, where it was enabled
            self.loop_profile.dump_stats(self.directory / f"loop-{pid}.prof")
            done.set()

        loop.call_soon_threadsafe(dump_loop)
        done.wait(5.0)
        for index, profile in enumerate(self.others):  # each is enabled only inside one publish call
            profile.dump_stats(self.directory / f"publish-{pid}-{index}.prof")


def _install_cprofile_hooks(directory: str) -> None:
    from celery import signals

    import flyte_celery.worker  # noqa: F401  (connect after its runtime starter, so the loop exists)
    from flyte_celery._celery import publisher, worker_process

    state: dict[str, _ProcessProfiles] = {}

    def profile_publish_batch(publish_batch: Callable[..., None]) -> Callable[..., None]:
        def profiled(self: Any, batch: list[Any]) -> None:
            profiles = state.get("profiles")
            if profiles is None:
                publish_batch(self, batch)
                return
            profile = profiles.thread_profile()
            profile.enable()
            try:
                publish_batch(self, batch)
            finally:
                profile.disable()

        return profiled

    _patch(publisher.Publisher, "_publish_batch", profile_publish_batch)

    def on_process_init(**_: Any) -> None:
        host = worker_process._process
        if host is not None:
            profiles = state["profiles"] = _ProcessProfiles(directory)
            profiles.start(host.loop)

    def on_process_shutdown(**_: Any) -> None:
        profiles, host = state.get("profiles"), worker_process._process
        if profiles is not None and host is not None:
            profiles.dump(host.loop)

    signals.worker_process_init.connect(on_process_init, weak=False)
    signals.worker_process_shutdown.connect(on_process_shutdown, weak=False)


def celery_worker_main(celery_args: list[str]) -> int:
    """`celery <celery_args>` with this script's probes installed first, as the environment asks."""
    trace_dir, cprofile_dir = os.environ.get(TRACE_DIR_ENV), os.environ.get(CPROFILE_DIR_ENV)
    if trace_dir:
        _install_trace_hooks(_TraceLog(trace_dir))
    if cprofile_dir:
        _install_cprofile_hooks(cprofile_dir)
    from celery.bin.celery import main as celery_main

    sys.argv = ["celery", *celery_args]
    celery_main()
    return 0


# Profiling the flyte-celery side.


STEP_PROCESS = {
    "celery:task_received": "worker main",
    "celery:message gate": "worker main",
    "celery:task_prerun": "child's pool process",
    "celery:task_postrun": "child's pool process",
    "run_action_body": "child's pool process",
    "ActionHost.run": "child's pool process",
    "execute_action": "child's pool process",
    "Runtime.complete": "child's pool process",
    "StartChecks.check": "child's pool process",
    "Publisher._publish_batch": "parent (publish thread)",
}


def chain_timeline(trace_dir: Path, run_name: str, durations_s: list[float]) -> str:
    """Median time of each step of a sequential child round trip, from the parent's call to its return."""
    events: list[list[Any]] = []
    for path in trace_dir.glob("trace-*.jsonl"):
        events += [json.loads(line) for line in path.read_text().splitlines() if line]
    marks: dict[str, list[tuple[str, float]]] = defaultdict(list)  # action -> (step, when)
    for name, run, action, start, end in events:
        if run == run_name and not name.startswith("celery:"):
            marks[action].append((name if end is None else f"{name} start", start))
            if end is not None:
                marks[action].append((f"{name} end", end))
    actions_of_task_ids = {f"{run_name}-{action}": action for action in marks}
    for name, _, task_id, start, _ in events:
        if name.startswith("celery:") and task_id in actions_of_task_ids:
            marks[actions_of_task_ids[task_id]].append((name, start))
    offsets: dict[str, list[float]] = defaultdict(list)
    for action, steps in marks.items():
        origins = [when for step, when in steps if step == "prepare_child_call start"]
        if action == "a0" or not origins:
            continue  # the root itself
        for step, when in steps:
            offsets[step].append((when - origins[0]) * 1e3)
    if not offsets:
        return "(no trace events recorded)"
    rows = []
    previous = 0.0
    for offset, step, count in sorted((statistics.median(v), step, len(v)) for step, v in offsets.items()):
        base = step.removesuffix(" start").removesuffix(" end")
        process = STEP_PROCESS.get(base, "parent (loop thread)")
        rows.append([step, process, format_number(offset, 3), format_number(offset - previous, 3), str(count)])
        previous = offset
    waited = statistics.median(offsets.get("Runtime.wait_for end", [math.nan]))
    measured = statistics.median(durations_s) * 1e3
    rows.append(["(root's await, outside the steps above)", "parent (loop thread)", format_number(measured, 3),
                 format_number(measured - waited, 3), str(len(durations_s))])  # fmt: skip
    return render_table(["step", "process", "at (ms)", "Δ (ms)", "samples"], rows, left_columns=2)


def profile_summary(cprofile_dir: Path, actions: int) -> str:
    """The CPU-time profiles of every pool process and thread, merged: own time, then ours cumulative."""
    files = sorted(cprofile_dir.glob("*.prof"))
    if not files:
        return "(no profiles written)"
    out = io.StringIO()
    stats = pstats.Stats(*map(str, files), stream=out)
    setattr(stats, "files", [])  # noqa: B010  (an undeclared attribute: no list of the files in the output)
    total_s: float = getattr(stats, "total_tt")  # noqa: B009
    print(
        f"{total_s:.2f} CPU s under cProfile (which inflates it) in the pool processes for {actions} actions "
        "(warm-up included); compare the functions with each other:",
        file=out,
    )
    stats.sort_stats("tottime").print_stats(PROFILE_TOP_N)
    print(f"{OURS} functions by cumulative CPU time:", file=out)
    stats.sort_stats("cumulative").print_stats("flyte_celery", PROFILE_TOP_N)
    return shorten_paths(out.getvalue())


def shorten_paths(text: str) -> str:
    import sysconfig

    prefixes = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["stdlib"], str(REPO_ROOT)}
    for prefix in sorted(prefixes, key=len, reverse=True):
        text = text.replace(prefix.rstrip("/") + "/", "")
    return text


@contextlib.contextmanager
def instrumented_flyte(redis_url: str, args: argparse.Namespace, log_dir: Path, knob: str) -> Iterator[FlyteSide]:
    """flyte-celery workers on a queue of their own, started with `knob` pointing at a fresh directory."""
    queue = f"bench-flyte-probe-{secrets.token_hex(3)}"
    configure_client(redis_url, queue, args.flyte_redis_max_connections)
    worker_env = {**flyte_env(redis_url, queue, args.flyte_redis_max_connections), knob: str(log_dir)}
    side = FlyteSide()

    def start() -> WorkerProcess:
        launcher = [sys.executable, str(Path(__file__).resolve()), "--celery-worker"]
        return start_worker("flyte_celery.worker", queue, args.concurrency, worker_env, log_dir, launcher=launcher)

    with worker_group([start]) as workers:
        wait_ready(workers, side.probe, f"instrumented {OURS}")
        yield side


def profile_flyte(redis_url: str, args: argparse.Namespace, log_dir: Path) -> str:
    """A traced chain (timeline of one round trip), then each scenario on cProfile'd workers (CPU per function)."""
    trace_dir = log_dir / "trace"
    trace_dir.mkdir()
    with instrumented_flyte(redis_url, args, trace_dir, TRACE_DIR_ENV) as side:
        side.chain(args.chain)  # warm-up
        run = flyte.with_runcontext(mode="remote").run(chain, args.chain)
        if run.wait(timeout=RUN_DEADLINE_S) != flyte.ActionPhase.SUCCEEDED:
            raise AssertionError(f"traced chain run {run.name} did not succeed")
        durations: list[float] = run.outputs().o0
    sections = [
        f"Timeline of a sequential child round trip (chain x{args.chain} on traced workers, p50 "
        f"{percentile(durations, 50) * 1e3:.2f} ms as the root saw it): median time of each step after the parent's"
        " prepare_child_call starts, and since the step before (Δ):\n" + chain_timeline(trace_dir, run.name, durations)
    ]
    # Under cProfile a wide gather's burst of new Redis connections can time out (see the module docstring).
    fan_n = min(args.n, PROFILED_FAN_OUT_MAX)
    scenarios: list[tuple[str, Callable[[FlyteSide], object], int]] = [
        (f"chain x{args.chain}", lambda side: side.chain(args.chain), args.chain + 1),
        (f"fan-out x{fan_n}", lambda side: side.fan_out(fan_n), fan_n + 1),
    ]
    for label, scenario, actions in scenarios:
        cprofile_dir = log_dir / f"cprofile-{label.split()[0]}"
        cprofile_dir.mkdir()
        with instrumented_flyte(redis_url, args, cprofile_dir, CPROFILE_DIR_ENV) as side:
            scenario(side)  # warm-up
            scenario(side)
        sections.append(
            f"cProfile ({label}, warm-up included; thread CPU time of the pool processes' main, loop and publish"
            " threads, so waits cost nothing):\n" + profile_summary(cprofile_dir, 2 * actions + 1)
        )
    return "\n\n".join(sections)


# Main.


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=positive_int, default=1000, help="children of the fan-out (default 1000)")
    parser.add_argument("--chain", type=positive_int, default=100, help="length of the sequential chain (default 100)")
    parser.add_argument("--repeat", type=positive_int, default=3, help="timed runs after one warm-up (default 3)")
    parser.add_argument("--concurrency", type=positive_int, default=2, help="prefork pool size of every worker "
                        "(default 2)")  # fmt: skip
    add_redis_db_argument(parser, 14)
    parser.add_argument("--profile", action="store_true", help="profile the flyte-celery side even if it passes")
    parser.add_argument("--no-profile", action="store_true", help="never profile, even when a target is missed")
    parser.add_argument(
        "--raw-stock-settings",
        action="store_true",
        help="run raw Celery with its default delivery settings (early acks, prefetch x4) instead of flyte-celery's",
    )
    parser.add_argument(
        "--flyte-redis-max-connections",
        type=int,
        default=None,
        help="pool limit put in flyte-celery's Redis URL (default 0: flyte-celery's own bounded pool)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--celery-worker"]:
        return celery_worker_main(argv[1:])
    args = parse_args(argv)
    print_header(argv)
    raw_settings = "Celery's defaults (early acks, prefetch x4)" if args.raw_stock_settings else (
        "the same as flyte-celery's app (JSON, acks_late, prefetch 1)"
    )  # fmt: skip
    print(
        f"workers: prefork -c {args.concurrency}, {' '.join(WORKER_FLAGS)}; task events on for both sides "
        f"({OURS}: worker_send_task_events + task_send_sent_event by default; raw: -E + task_send_sent_event=True); "
        f"raw delivery settings: {raw_settings}"
    )
    print(f"redis: {REDIS_BASE_URL}/{args.redis_db} (broker and results, flushed at start and end)")
    if args.flyte_redis_max_connections is None:
        args.flyte_redis_max_connections = 0  # flyte-celery bounds its own pool (waiters queue for a connection)
    started = time.monotonic()
    try:
        redis_url = prepare_redis(args.redis_db)
    except RuntimeError as exc:
        print(f"cannot use Redis: {exc}", file=sys.stderr)
        return 2
    raw_queue, flyte_queue = f"bench-raw-{secrets.token_hex(3)}", f"bench-flyte-{secrets.token_hex(3)}"
    configure_client(redis_url, flyte_queue, args.flyte_redis_max_connections)
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        log_dir = Path(tmp)
        raw_side = RawSide(redis_url, raw_queue, args.raw_stock_settings)
        flyte_side = FlyteSide()
        starts = [
            lambda: start_worker(
                "bench._raw_app",
                raw_queue,
                args.concurrency,
                raw_env(redis_url, raw_queue, args.raw_stock_settings),
                log_dir,
            ),
            lambda: start_worker(
                "flyte_celery.worker",
                flyte_queue,
                args.concurrency,
                flyte_env(redis_url, flyte_queue, args.flyte_redis_max_connections),
                log_dir,
            ),
        ]
        try:
            with worker_group(starts) as workers:
                wait_ready(workers[:1], raw_side.probe, RAW)
                wait_ready(workers[1:], flyte_side.probe, OURS)
                try:
                    sides = {RAW: raw_side, OURS: flyte_side}
                    by_side = {RAW: workers[:1], OURS: workers[1:]}
                    results = measure(sides, by_side, args.n, args.chain, args.repeat)
                except Exception:
                    for worker in workers:
                        print(f"--- log of worker {worker.name} (end) ---\n{worker.log_tail()}", file=sys.stderr)
                    raise
            table, verdicts = report(results, args.n, args.chain)
            print()
            print(table)
            print()
            print(
                f"Cells: best (median) of {args.repeat} runs after one warm-up; ratio and verdict use the best. "
                f"{OURS} fan-out time includes its root action; chain round trips are timed inside the root "
                f"({OURS}) or in this client (raw). CPU = user + system time of the side's worker processes "
                "(main and pool, from /proc) and of this client process, over the timed run."
            )
            load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
            print(f"total: {time.monotonic() - started:.1f} s; load at the end {load}")
            missed = not (verdicts.fan_out_passes and verdicts.chain_passes)
            if (missed or args.profile) and not args.no_profile:
                print()
                print(f"Profiling {OURS} ({'a target was missed' if missed else '--profile'}):")
                print()
                print(profile_flyte(redis_url, args, log_dir))
                print(f"total with profiling: {time.monotonic() - started:.1f} s")
        finally:
            raw_side.close()
            flush_redis(redis_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
