"""The README's examples, run the way it says: `python examples/<file>.py` from a directory with no config file and
no `FLYTE_CELERY_*` variables (local mode, no services), and with `FLYTE_CELERY_RUN_MODE=remote` against a worker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests._workers import REPO_ROOT, WorkerFactory

EXAMPLES = REPO_ROOT / "examples"
RUN_DEADLINE_S = 120.0
RUN_CONTEXT_LINES = [
    r"run=(\S+), action=\S+, mode={mode}, in_cluster={in_cluster}",
    r"custom context: \{'team': 'ml'\}",
    r"run (\S+): succeeded, outputs ActionOutputs\(o0=42\)",
]


def run_example(name: str, cwd: Path, **env: str) -> str:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("FLYTE_CELERY_")}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, cwd=cwd, env={**clean, **env},
        timeout=RUN_DEADLINE_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_main_example_runs_locally_with_nothing_configured(tmp_path: Path) -> None:
    lines = run_example("run_context.py", tmp_path).splitlines()
    assert len(lines) == len(RUN_CONTEXT_LINES), lines
    patterns = [p.replace("{mode}", "local").replace("{in_cluster}", "False") for p in RUN_CONTEXT_LINES]
    matches = [re.fullmatch(pattern, line) for pattern, line in zip(patterns, lines, strict=True)]
    assert all(matches), lines
    assert matches[0] is not None
    assert matches[2] is not None
    assert matches[0].group(1) == matches[2].group(1)  # the context names the run the handle names


def test_the_main_example_runs_on_a_worker_in_remote_mode(
    redis_client: Any, worker_factory: WorkerFactory, tmp_path: Path
) -> None:
    worker_factory.start(concurrency=2)
    output = run_example("run_context.py", tmp_path, FLYTE_CELERY_RUN_MODE="remote", **worker_factory.env)
    # The root prints on the worker: the client prints only the run's line.
    assert re.fullmatch(RUN_CONTEXT_LINES[2] + "\n", output), output


@pytest.mark.parametrize("mode", ["local", "remote"])
def test_the_fan_out_example_sums_its_squares(
    mode: str, redis_client: Any, worker_factory: WorkerFactory, tmp_path: Path
) -> None:
    env = {}
    if mode == "remote":
        worker_factory.start(concurrency=2)
        env = {"FLYTE_CELERY_RUN_MODE": "remote", **worker_factory.env}
    output = run_example("fan_out.py", tmp_path, **env)
    expected = sum(i * i for i in range(20) if i != 13)
    assert re.search(rf"^run \S+: outputs ActionOutputs\(o0={expected}\)$", output, re.M), output
