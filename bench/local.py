"""Per-action overhead of local mode: flyte-celery against Flyte, each against the same program in plain asyncio.

    python bench/local.py [--children 1000] [--depth 200] [--repeat 3]

Scenarios (every task body is a no-op, so what is left is the framework's cost):
  fan-out    a root gathering N children: `await asyncio.gather(*(noop(i) for i in range(n)))`
  chain      a root awaiting `step(i)` D times in a loop
  recursive  a task awaiting itself D levels deep

Per-action overhead = (best wall time of the run - best wall time of the plain-asyncio program) / actions, where
"best" is the minimum of --repeat runs after one warm-up run, and actions count the root too (fan-out N+1, chain
D+1, recursive D), so the run's fixed start-up cost is spread over them. Each (framework, scenario) pair runs in a
fresh worker process (this script with `--worker NAME`, which prints one JSON line), so imports and peak RSS do not
leak between them: flyte-celery under this interpreter, Flyte under $FLYTE_PYTHON (default
/work/flyte-venv/bin/python), or this interpreter if it can `import flyte`. A recursive run that hits Python's
recursion limit is reported, together with the deepest chain that fits, and then measured again under a raised limit.

`python bench/local.py --worker flyte-celery --scenario fan-out --profile` prints a cProfile of flyte-celery's
hottest functions for one run instead of the JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import importlib.util
import io
import json
import logging
import math
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if not __package__:  # run as `python bench/local.py`: make `bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._table import MISSING, format_number, format_ratio, ratio, render_table, verdict

OURS = "flyte-celery"
FLYTE = "flyte"
FRAMEWORKS = (OURS, FLYTE)
SCENARIOS = ("fan-out", "chain", "recursive")
TARGET_RATIO = 3.0  # Flyte's per-action overhead divided by ours must reach this
DEFAULT_FLYTE_PYTHON = "/work/flyte-venv/bin/python"
RESULT_MARKER = "BENCH_RESULT "
CACHE_PATH_ENV_VAR = "FLYTE_CELERY_LOCAL_CACHE_PATH"
WORKER_TIMEOUT_S = 900.0
RECURSION_HEADROOM = 4  # raised limit = default limit x this x (depth / deepest chain that fit)
PROFILE_TOP_N = 20


@dataclass(frozen=True)
class Framework:
    """How one framework turns a coroutine function into a task, and runs a root task to its value."""

    name: str
    version: str
    task: Callable[[Any], Any]
    run: Callable[[Any, int], Any]


def load_framework(name: str, scratch: Path) -> Framework:
    """Imports only the framework asked for (each lives in its own virtualenv); its files go under `scratch`."""
    if name == OURS:
        os.environ.setdefault(CACHE_PATH_ENV_VAR, str(scratch / "cache.db"))
        import flyte_celery

        # init_from_config, not init: init() takes defaults only and would ignore FLYTE_CELERY_LOCAL_CACHE_PATH.
        flyte_celery.init_from_config(log_level=logging.CRITICAL)
        ours_env = flyte_celery.TaskEnvironment("bench-local")

        def run_ours(root: Any, arg: int) -> Any:
            return flyte_celery.with_runcontext(mode="local").run(root, arg).outputs()[0]

        return Framework(OURS, flyte_celery.__version__, ours_env.task, run_ours)
    if name == FLYTE:
        import flyte

        flyte.init(log_level=logging.CRITICAL)  # a failing recursive run would otherwise log every level's error
        flyte_env = flyte.TaskEnvironment("bench-local")

        def run_flyte(root: Any, arg: int) -> Any:
            runner = flyte.with_runcontext(mode="local", raw_data_path=str(scratch / "flyte-raw-data"))
            if hasattr(runner, "_metadata_path"):
                # Flyte's local mode makes a directory per action under /tmp/flyte/metadata unless this private
                # runner field says otherwise; keep those thousands of directories in our scratch directory.
                runner._metadata_path = str(scratch / "flyte-metadata")
            return runner.run(root, arg).outputs()[0]

        return Framework(FLYTE, flyte.__version__, flyte_env.task, run_flyte)
    raise ValueError(f"unknown framework {name!r}")


def plain() -> Framework:
    """The baseline: the same coroutines, undecorated, each run on a fresh `asyncio.run` loop."""

    def run_plain(root: Any, arg: int) -> Any:
        return asyncio.run(root(arg))

    return Framework("plain", sys.version.split()[0], lambda func: func, run_plain)


def build_programs(task: Callable[[Any], Any]) -> dict[str, Any]:
    """The three scenario roots, their tasks made with `task` (a framework's decorator, or the identity)."""

    @task
    async def noop(i: int) -> int:
        return i

    @task
    async def fan_out(n: int) -> int:
        results = await asyncio.gather(*(noop(i) for i in range(n)))
        return len(results)

    @task
    async def step(i: int) -> int:
        return i

    @task
    async def chain(n: int) -> int:
        for i in range(n):
            await step(i)
        return n

    @task
    async def recursive(depth: int) -> int:
        if depth <= 1:
            return 1
        below: int = await recursive(depth - 1)
        return below + 1

    return {"fan-out": fan_out, "chain": chain, "recursive": recursive}


def scenario_size(scenario: str, children: int, depth: int) -> tuple[int, int]:
    """The root's argument and the number of actions one run makes (the root included)."""
    if scenario == "fan-out":
        return children, children + 1
    if scenario == "chain":
        return depth, depth + 1
    return depth, depth


def timed_runs(framework: Framework, root: Any, arg: int, repeat: int) -> list[float]:
    """One warm-up run, then `repeat` timed runs; every run must return `arg` (each root returns its size)."""
    _check(framework.run(root, arg), arg, framework)
    times = []
    for _ in range(repeat):
        gc.collect()  # so one run does not pay for the previous run's garbage
        start = time.perf_counter()
        value = framework.run(root, arg)
        times.append(time.perf_counter() - start)
        _check(value, arg, framework)
    return times


def _check(value: Any, expected: int, framework: Framework) -> None:
    if value != expected:
        raise AssertionError(f"{framework.name} returned {value!r}, expected {expected!r}")


def is_recursion_error(exc: BaseException) -> bool:
    # Both frameworks convert the RecursionError raised in a task body into their own RuntimeUserError.
    return isinstance(exc, RecursionError) or "recursion depth" in str(exc)


def deepest_fitting(framework: Framework, root: Any, failed_at: int) -> int:
    """The deepest recursive chain below `failed_at` that runs under the current recursion limit (bisection)."""
    low, high = 0, failed_at  # low fits (0 = nothing tried yet), high fails
    while high - low > 1:
        middle = (low + high) // 2
        try:
            framework.run(root, middle)
        except Exception as exc:
            if not is_recursion_error(exc):
                raise
            high = middle
        else:
            low = middle
    return low


def peak_rss_kib() -> float:
    peak = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return peak / 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


def run_worker(framework_name: str, scenario: str, children: int, depth: int, repeat: int) -> dict[str, Any]:
    """Measures one scenario for one framework against the plain program, in this process."""
    with tempfile.TemporaryDirectory(prefix="bench-local-worker-") as scratch:
        return _measure(load_framework(framework_name, Path(scratch)), scenario, children, depth, repeat)


def _measure(framework: Framework, scenario: str, children: int, depth: int, repeat: int) -> dict[str, Any]:
    baseline = plain()
    arg, actions = scenario_size(scenario, children, depth)
    result: dict[str, Any] = {
        "framework": framework.name,
        "version": framework.version,
        "python": sys.version.split()[0],
        "scenario": scenario,
        "actions": actions,
        "baseline_s": timed_runs(baseline, build_programs(baseline.task)[scenario], arg, repeat),
        "framework_s": None,
        "rss_delta_kib": None,
        "recursion": None,
        "error": None,
    }
    root = build_programs(framework.task)[scenario]
    rss_before = peak_rss_kib()
    try:
        result["framework_s"] = timed_runs(framework, root, arg, repeat)
    except Exception as exc:
        if scenario != "recursive" or not is_recursion_error(exc):
            result["error"] = f"{type(exc).__name__}: {exc}"
            return result
        default_limit = sys.getrecursionlimit()
        fits = deepest_fitting(framework, root, arg)
        raised = default_limit * RECURSION_HEADROOM * math.ceil(arg / max(fits, 1))
        result["recursion"] = {"default_limit": default_limit, "deepest_fitting": fits, "raised_limit": raised}
        sys.setrecursionlimit(raised)
        try:
            result["framework_s"] = timed_runs(framework, root, arg, repeat)
        except Exception as retry_exc:
            result["error"] = f"{type(retry_exc).__name__}: {retry_exc}"
            return result
    result["rss_delta_kib"] = peak_rss_kib() - rss_before
    return result


def profile_worker(framework_name: str, scenario: str, children: int, depth: int) -> str:
    """cProfile of one (warmed-up) run, top functions by own time, limited to the framework's package."""
    with tempfile.TemporaryDirectory(prefix="bench-local-profile-") as scratch:
        return _profile(load_framework(framework_name, Path(scratch)), scenario, children, depth)


def _profile(framework: Framework, scenario: str, children: int, depth: int) -> str:
    arg, _ = scenario_size(scenario, children, depth)
    if scenario == "recursive":
        sys.setrecursionlimit(sys.getrecursionlimit() * RECURSION_HEADROOM * 4)
    root = build_programs(framework.task)[scenario]
    framework.run(root, arg)
    profiler = cProfile.Profile()
    profiler.runcall(framework.run, root, arg)
    out = io.StringIO()
    package = framework.name.replace("-", "_")
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(package, PROFILE_TOP_N)
    stats.sort_stats("cumulative").print_stats(package, PROFILE_TOP_N)
    return out.getvalue()


def find_flyte_python() -> str | None:
    """Flyte's interpreter: $FLYTE_PYTHON (default: the flyte-venv one) if it exists, else ours if it has flyte."""
    candidate = os.environ.get("FLYTE_PYTHON", DEFAULT_FLYTE_PYTHON)
    if candidate and Path(candidate).is_file():
        return candidate
    if importlib.util.find_spec("flyte") is not None:
        return sys.executable
    return None


def spawn_worker(python: str, framework: str, scenario: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    command = [
        python,
        str(Path(__file__).resolve()),
        "--worker",
        framework,
        "--scenario",
        scenario,
        "--children",
        str(args.children),
        "--depth",
        str(args.depth),
        "--repeat",
        str(args.repeat),
    ]
    # A private cache file and working directory: no stray config.yaml is picked up, nothing of the user's is touched.
    env = {**os.environ, CACHE_PATH_ENV_VAR: str(workdir / "cache.db")}
    try:
        done = subprocess.run(
            command, cwd=workdir, env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"worker timed out after {WORKER_TIMEOUT_S:g}s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            parsed: dict[str, Any] = json.loads(line[len(RESULT_MARKER) :])
            return parsed
    tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
    return {"error": f"worker exited {done.returncode}: " + " / ".join(tail)}


def overhead_us(result: dict[str, Any] | None) -> float | None:
    if not result or not result.get("framework_s") or not result.get("baseline_s"):
        return None
    actions: int = result["actions"]
    best_framework: float = min(result["framework_s"])
    best_baseline: float = min(result["baseline_s"])
    return (best_framework - best_baseline) / actions * 1e6


def best_ms(runs: list[float] | None) -> float | None:
    return min(runs) * 1e3 if runs else None


def report(results: dict[tuple[str, str], dict[str, Any]], flyte_available: bool) -> str:
    ours_label, flyte_label = f"{OURS} µs/action", f"{FLYTE} µs/action"
    overhead_rows = []
    wall_rows = []
    notes = []
    for scenario in SCENARIOS:
        ours, theirs = results.get((OURS, scenario)), results.get((FLYTE, scenario))
        ours_us, flyte_us = overhead_us(ours), overhead_us(theirs)
        value = ratio(flyte_us, ours_us)
        actions = next((r["actions"] for r in (ours, theirs) if r and "actions" in r), None)
        overhead_rows.append(
            [
                scenario,
                MISSING if actions is None else str(actions),
                format_number(ours_us),
                format_number(flyte_us),
                format_ratio(value),
                verdict(value, TARGET_RATIO),
            ]
        )
        row = [scenario]
        for result in (ours, theirs):
            result = result or {}
            row += [
                format_number(best_ms(result.get("baseline_s")), 2),
                format_number(best_ms(result.get("framework_s")), 2),
            ]
        row += [
            format_number((ours or {}).get("rss_delta_kib"), 0),
            format_number((theirs or {}).get("rss_delta_kib"), 0),
        ]
        wall_rows.append(row)
        for framework, result in ((OURS, ours), (FLYTE, theirs)):
            if not result:
                continue
            if result.get("error"):
                notes.append(f"{framework} {scenario}: FAILED: {result['error']}")
            recursion = result.get("recursion")
            if recursion:
                notes.append(
                    f"{framework} {scenario}: depth {result['actions']} exceeds Python's default recursion limit "
                    f"({recursion['default_limit']}); deepest chain that fits: {recursion['deepest_fitting']}; "
                    f"measured with sys.setrecursionlimit({recursion['raised_limit']})"
                )
    headers = ["scenario", "actions", ours_label, flyte_label, "ratio (flyte/ours)", f"target >= {TARGET_RATIO:g}x"]
    lines = [] if flyte_available else ["flyte not installed: skipped", ""]
    lines += [
        f"Target: at least {TARGET_RATIO:g}x less overhead per action than Flyte's local mode.",
        "Overhead per action = (best run - best plain-asyncio run of the same program) / actions.",
        "",
        render_table(headers, overhead_rows),
        "",
        "Best wall time per run (ms), and peak RSS growth over the framework's runs (KiB; for a recursive run that hit"
        " the recursion limit, the failing runs count too):",
        render_table(
            [
                "scenario",
                f"plain ({OURS} proc)",
                OURS,
                f"plain ({FLYTE} proc)",
                FLYTE,
                f"RSS Δ {OURS}",
                f"RSS Δ {FLYTE}",
            ],
            wall_rows,
        ),
    ]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--children", type=int, default=1000, help="children of the fan-out root (default 1000)")
    parser.add_argument("--depth", type=int, default=200, help="length of the chains (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs after one warm-up; the best counts")
    parser.add_argument("--worker", "--framework", dest="worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    parser.add_argument("--scenario", choices=SCENARIOS, default="fan-out", help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.children < 1 or args.depth < 1 or args.repeat < 1:
        parser.error("--children, --depth and --repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker and args.profile:
        print(profile_worker(args.worker, args.scenario, args.children, args.depth))
        return 0
    if args.worker:
        result = run_worker(args.worker, args.scenario, args.children, args.depth, args.repeat)
        print(RESULT_MARKER + json.dumps(result), flush=True)
        return 0
    if importlib.util.find_spec("flyte_celery") is None:
        print(f"flyte_celery is not importable by {sys.executable}; run this with /work/venv/bin/python")
        return 2
    interpreters = {OURS: sys.executable}
    flyte_python = find_flyte_python()
    if flyte_python is not None:
        interpreters[FLYTE] = flyte_python
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    results: dict[tuple[str, str], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-local-") as tmp:
        # Frameworks alternate per scenario, so a slow spell of a shared machine does not land on one side only.
        for scenario in SCENARIOS:
            for framework, python in interpreters.items():
                results[framework, scenario] = spawn_worker(python, framework, scenario, args, Path(tmp))
    for framework, python in interpreters.items():
        first = results[framework, SCENARIOS[0]]
        print(f"{framework} {first.get('version', '?')} (python {first.get('python', '?')}, {python})")
    print()
    print(report(results, flyte_python is not None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
