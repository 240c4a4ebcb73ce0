"""`flyte-celery run --follow`, `runs`, `get` and `abort`, driven as a user would: the `flyte-celery` command in a
subprocess pointed at a real worker, its output read from a pipe or, for the live view, from a pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

from flyte_celery import remote
from tests._services import wait_until
from tests._workers import REPO_ROOT, WorkerFactory
from tests.integration.programs import run_views

COMMAND = str(Path(sys.executable).with_name("flyte-celery"))
PROGRAM = str(REPO_ROOT / "tests" / "integration" / "programs" / "run_views.py")
COMMAND_DEADLINE_S = 120.0
SCREEN_LINES = 40
ANSI = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|\][^\x07]*\x07)")


def cli(factory: WorkerFactory, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COMMAND, *args], capture_output=True, text=True, cwd=REPO_ROOT, env={**os.environ, **factory.env},
        timeout=COMMAND_DEADLINE_S,
    )  # fmt: skip


def run_name(output: str) -> str:
    match = re.search(r"^run: (\S+)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


def in_a_terminal(factory: WorkerFactory, rows: int, *args: str) -> tuple[int, str]:
    """Run the command with a pseudo-terminal of `rows` x 120 as its stdin, stdout and stderr; read everything it
    writes until it exits. Returns its exit code and its output without terminal control sequences."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, 120, 0, 0))
    env = {**os.environ, **factory.env, "TERM": "xterm-256color"}
    env.pop("COLUMNS", None), env.pop("LINES", None)
    process = subprocess.Popen([COMMAND, *args], stdin=slave, stdout=slave, stderr=slave, cwd=REPO_ROOT, env=env)
    os.close(slave)
    output = b""
    deadline = time.monotonic() + COMMAND_DEADLINE_S
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal's other end closed: the command exited
                break
            if not data:
                break
            output += data
        code = process.wait(timeout=COMMAND_DEADLINE_S)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
    return code, ANSI.sub("", output.decode(errors="replace")).replace("\r", "")


def last_frame(screen: str) -> str:
    """The last frame the live view drew: from its last header ("run <name>  <phase>") on."""
    return screen[screen.rindex(f"run {run_name(screen)}  ") :]


def test_follow_without_a_terminal_prints_phases_and_exits_with_the_outcome(
    redis_client: Any, worker_factory: WorkerFactory
) -> None:
    worker_factory.start(concurrency=2)
    good = cli(worker_factory, "run", "--mode", "remote", "--follow", "-p", "cli", PROGRAM, "all_good", "--n", "3")
    assert good.returncode == 0, good.stderr
    assert "phase: succeeded (4 actions: 4 succeeded)" in good.stdout
    assert good.stdout.rstrip().endswith(f"o0={6 * run_views.FAIL_EVERY}")

    bad = cli(worker_factory, "run", "--mode", "remote", "--follow", "--name", "nightly-1", PROGRAM, "fan_out",
              "--n", "20")  # fmt: skip
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert re.search(r"^failed: \S+ run_views\.leaf \(i=7\): RuntimeUserError \(code=ValueError", bad.stdout, re.M)
    assert bad.stdout.rstrip().endswith("phase: failed (21 actions: 19 succeeded, 2 failed)")
    assert "Error: RuntimeUserError (code=RuntimeError, kind=user): 1 of 20 leaves failed" in bad.stderr

    listed = cli(worker_factory, "runs")
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.splitlines()
    assert rows[0].split()[:3] == ["NAME", "PHASE", "TASK"]
    assert [row.split()[:3] for row in rows[1:]] == [
        ["nightly-1", "failed", "run_views.fan_out"],
        [run_name(good.stdout), "succeeded", "run_views.all_good"],
    ]
    for filters, expected in [
        (["--phase", "failed"], ["nightly-1"]),
        (["--phase", "succeeded", "--phase", "running"], [run_name(good.stdout)]),
        (["-p", "cli"], [run_name(good.stdout)]),
        (["--prefix", "nightly"], ["nightly-1"]),
        (["--name-prefix", "nightly", "--phase", "succeeded"], []),
        (["--limit", "1"], ["nightly-1"]),
    ]:
        result = cli(worker_factory, "runs", *filters)
        assert result.returncode == 0, result.stderr
        assert [row.split()[0] for row in result.stdout.splitlines()[1:] if expected] == expected, filters
        assert expected or result.stdout.strip() == "no runs found matching the filters"
    wrong = cli(worker_factory, "runs", "--phase", "sleeping")
    assert wrong.returncode == 2
    assert "'sleeping' is not one of" in wrong.stderr


def test_the_live_view_shows_the_tree_or_counts_per_task(redis_client: Any, worker_factory: WorkerFactory) -> None:
    worker_factory.start(concurrency=2)
    code, screen = in_a_terminal(worker_factory, 60, "run", "--mode", "remote", "--follow", PROGRAM, "fan_out",
                                 "--n", "20")  # fmt: skip
    assert code == 1, screen
    final = last_frame(screen)
    assert re.search(r"a0 run_views\.fan_out failed \S+", final), final
    assert len(re.findall(r"[├└]── \S+ run_views\.leaf succeeded \S+", final)) == 19, final
    assert len(re.findall(r"[├└]── \S+ run_views\.leaf failed \S+", final)) == 1, final
    assert "first failure: " in final
    assert "ValueError: leaf 7 refuses" in final

    code, screen = in_a_terminal(worker_factory, 24, "run", "--mode", "remote", "--follow", PROGRAM, "fan_out",
                                 "--n", "200")  # fmt: skip
    assert code == 1, screen
    final = last_frame(screen)
    assert "201 actions: 198 succeeded, 3 failed" in final
    # Too many actions for 24 rows: counted per task (total, succeeded, running, queued, failed, aborted).
    assert re.search(r"run_views\.leaf\s+200\s+198\s+0\s+0\s+2\s+0\s", final), final
    assert re.search(r"run_views\.fan_out\s+1\s+0\s+0\s+0\s+1\s+0\s", final), final
    assert "──" not in final


def test_get_summarises_a_run_of_1000_actions_in_one_screen(
    redis_client: Any, worker_factory: WorkerFactory, tmp_path: Path
) -> None:
    worker_factory.start(concurrency=2)
    followed = cli(worker_factory, "run", "--mode", "remote", "--follow", PROGRAM, "fan_out", "--n", "1000")
    assert followed.returncode == 1, followed.stderr
    name = run_name(followed.stdout)

    shown = cli(worker_factory, "get", name)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert len(lines) <= SCREEN_LINES, shown.stdout
    assert f"run       {name} (remote)" in lines
    assert "phase     failed" in lines
    assert "inputs    (n=1000)" in lines
    assert "error     RuntimeUserError (code=RuntimeError, kind=user): 10 of 1000 leaves failed" in lines
    assert "actions   1001 actions: 990 succeeded, 11 failed" in lines
    leaf_row = r"\s+run_views\.leaf\s+1000\s+990\s+0\s+0\s+10\s+0\s+\S+\s+\S+"
    assert any(re.fullmatch(leaf_row, line) for line in lines), shown.stdout
    assert "failures  10 actions failed; the first ones:" in lines
    assert re.search(r"^  \S+ run_views\.leaf \(i=7\): RuntimeUserError \(code=ValueError", shown.stdout, re.M)
    assert "  ... 7 more (--full lists them all)" in lines
    assert "ValueError: leaf 7 refuses" in shown.stdout  # the first failure's traceback
    first = re.search(r"^  (\S+) run_views\.leaf \(i=7\)", shown.stdout, re.M)
    assert first, shown.stdout
    assert f"    its last lines of output (flyte-celery logs {name} {first.group(1)}):" in lines
    assert "    | leaf 7 is about to refuse" in lines  # what it printed on its worker

    full = cli(worker_factory, "get", name, "--full")
    for i in range(run_views.FAILING_REMAINDER, 1000, run_views.FAIL_EVERY):
        assert f"run_views.leaf (i={i}): RuntimeUserError" in full.stdout

    reported = cli(worker_factory, "run", "--mode", "remote", "--follow", PROGRAM, "reported", "--n", "3")
    assert reported.returncode == 0, reported.stderr
    summary = cli(worker_factory, "get", run_name(reported.stdout)).stdout
    assert "outputs   o0=6" in summary
    report = re.search(r"^reports   (\S+)$", summary, re.M)
    assert report, summary
    assert report.group(1).endswith("/a0/report.html")
    assert "n is 3" in Path(report.group(1)).read_text()

    missing = cli(worker_factory, "get", "no-such-run")
    assert missing.returncode == 1
    assert "no run named 'no-such-run' on the cluster" in missing.stderr


def test_abort_stops_a_running_run(redis_client: Any, worker_factory: WorkerFactory) -> None:
    worker_factory.start(concurrency=1)
    started = cli(worker_factory, "run", "--mode", "remote", PROGRAM, "waits_forever", "--tag", "x")
    assert started.returncode == 0, started.stderr
    name = run_name(started.stdout)
    run = remote.Run.get(name)
    running = [remote.ActionPhase.RUNNING, remote.ActionPhase.SUCCEEDED]
    wait_until(lambda: [a.phase for a in run.actions()] == running, 60, "the root to wait after its leaf")

    aborted = cli(worker_factory, "abort", name)
    assert aborted.returncode == 0, aborted.stderr
    assert aborted.stdout.strip() == f"run {name}: aborted"
    shown = cli(worker_factory, "get", name).stdout
    assert "phase     failed" not in shown
    assert "phase     aborted" in shown
    assert "actions   2 actions: 1 succeeded, 1 aborted" in shown
    assert "error     ActionAbortedError" in shown
    again = cli(worker_factory, "abort", name)
    assert again.stdout.strip() == f"run {name} already ended: aborted"
