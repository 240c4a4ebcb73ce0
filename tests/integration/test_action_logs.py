"""What an action prints and logs on a worker is one of its log lines, naming its run and action (console and JSON),
and is kept per action in Redis for `flyte-celery logs RUN ACTION`: bounded, with the results' TTL.

The children of `chatty_root` are hosted together by one pool process and each holds a partial line while all its
siblings do (they meet between the halves), so a process-wide attribution would mix them up.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import flyte_celery as flyte
from flyte_celery._celery.action_logs import read_action_logs
from flyte_celery._celery.keys import Keys
from flyte_celery._init import current_settings
from tests._services import wait_until
from tests._workers import Worker, WorkerFactory
from tests.integration.programs import action_logs

RUN_DEADLINE_S = 90.0
CHILDREN = 3
RESULTS_TTL_S = 600
CAP_BYTES = 64 * 1024


def _run_chatty(tag: str) -> tuple[str, list[str]]:
    """(run name, [async children..., sync child]) of a finished `chatty_root` run."""
    run = flyte.with_runcontext(mode="remote").run(action_logs.chatty_root, tag, CHILDREN)
    return run.name, run.outputs(timeout=RUN_DEADLINE_S).o0


def _markers(tag: str, names: list[str]) -> dict[str, list[str]]:
    """Every action's markers, by action name."""
    markers = {
        "a0": [f"root-print-{tag}", f"root-log-{tag}", f"root-after-{tag}"],
        names[-1]: [f"sync-print-{tag}", f"sync-log-{tag}"],
    }
    for i, name in enumerate(names[:-1]):
        line = f"print-{tag}-{i}-one print-{tag}-{i}-two"
        markers[name] = [line, f"user-log-{tag}-{i}", f"library-log-{tag}-{i}", f"stderr-{tag}-{i}"]
    return markers


def _lines_with(text: str, marker: str) -> list[str]:
    return [line for line in text.splitlines() if re.search(rf"{re.escape(marker)}(\s|$|\")", line)]


def _logs_cli(worker: Worker, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from flyte_celery._cli import main; main()", "logs", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_each_line_names_its_action_in_the_worker_log_and_in_its_own_logs(
    worker_factory: WorkerFactory, redis_client: Any
) -> None:
    worker = worker_factory.start(1, FLYTE_CELERY_RETENTION_RESULTS_S=str(RESULTS_TTL_S))
    tag = "console"
    run, names = _run_chatty(tag)
    markers = _markers(tag, names)
    wait_until(lambda: _lines_with(worker.log(), f"root-after-{tag}"), 15, "the root's last line in the worker log")

    log = worker.log()
    for action, expected in markers.items():
        for marker in expected:
            lines = _lines_with(log, marker)
            assert len(lines) == 1, f"{marker!r} in {len(lines)} lines:\n{log[-3000:]}"
            assert f"[{run}][{action}]" in lines[0], lines[0]
    assert "WARNING flyte_celery.user.stderr: stderr-" in log
    assert "INFO flyte_celery.user.stdout: print-" in log

    for action, expected in markers.items():
        result = _logs_cli(worker, worker_factory.env, run, action)
        assert result.returncode == 0, result.stderr
        shown = result.stdout
        assert all(_lines_with(shown, marker) for marker in expected), f"{action}:\n{shown}"
        others = [m for other, ms in markers.items() if other != action for m in ms]
        assert not [m for m in others if _lines_with(shown, m)], f"{action} shows another action's lines:\n{shown}"
    assert _logs_cli(worker, worker_factory.env, run).stdout == _logs_cli(worker, worker_factory.env, run, "a0").stdout
    assert _logs_cli(worker, worker_factory.env, run, "a0", "--tail", "1").stdout == f"root-after-{tag}\n"

    keys = Keys(current_settings().redis.key_prefix)
    assert 0 < redis_client.ttl(keys.logs(run, names[0])) <= RESULTS_TTL_S
    assert read_action_logs(run, names[0], tail=1) == [f"stderr-{tag}-0"]


def test_unknown_runs_and_actions_are_named_in_the_error(worker_factory: WorkerFactory) -> None:
    worker = worker_factory.start(1)
    run = flyte.with_runcontext(mode="remote").run(action_logs.sync_child, "quiet")
    run.outputs(timeout=RUN_DEADLINE_S)

    missing_action = _logs_cli(worker, worker_factory.env, run.name, "nosuchaction")
    assert missing_action.returncode == 1
    assert "'nosuchaction'" in missing_action.stderr
    assert run.name in missing_action.stderr
    missing_run = _logs_cli(worker, worker_factory.env, "nosuchrun")
    assert missing_run.returncode == 1
    assert "'nosuchrun'" in missing_run.stderr


def test_json_lines_are_whole_json_objects_naming_run_action_and_task(worker_factory: WorkerFactory) -> None:
    worker = worker_factory.start(1, FLYTE_CELERY_LOG_FORMAT="json")
    tag = "json"
    run, names = _run_chatty(tag)
    wait_until(lambda: _lines_with(worker.log(), f"root-after-{tag}"), 15, "the root's last line in the worker log")

    records = []
    for line in worker.log().splitlines():
        if f"-{tag}" in line and "library-log" not in line:  # the library logs through Celery's root handler
            records.append(json.loads(line))
    by_message = {record["message"]: record for record in records}
    tasks = {"a0": action_logs.chatty_root.name, names[-1]: action_logs.sync_child.name}
    for action, expected in _markers(tag, names).items():
        for marker in expected:
            if marker.startswith("library-log"):
                continue
            record = by_message[marker]
            assert (record["run_name"], record["action_name"]) == (run, action), record
            assert record["task_name"] == tasks.get(action, action_logs.chatty_child.name), record
    assert by_message[f"stderr-{tag}-0"]["level"] == "WARNING"
    assert by_message[f"root-print-{tag}"]["logger"] == "flyte_celery.user.stdout"


def test_a_flood_keeps_its_first_and_last_lines_within_the_bound(
    worker_factory: WorkerFactory, redis_client: Any
) -> None:
    worker_factory.start(1, FLYTE_CELERY_LOG_CAPTURE_MAX_BYTES=str(CAP_BYTES))
    run = flyte.with_runcontext(mode="remote").run(action_logs.flood, "big")
    assert run.outputs(timeout=RUN_DEADLINE_S).o0 == action_logs.BIG_LINES

    stored = redis_client.get(Keys(current_settings().redis.key_prefix).logs(run.name, "a0"))
    assert CAP_BYTES - action_logs.BIG_LINE_CHARS <= len(stored) <= CAP_BYTES
    lines = read_action_logs(run.name)
    assert lines[0] == "flood-first-big"
    assert lines[-1] == "flood-last-big"
    cut = [line for line in lines if line.startswith("[... ")]
    assert len(cut) == 1, cut
    cut_bytes = re.match(r"\[\.\.\. (\d+) bytes", cut[0])
    assert cut_bytes is not None, cut
    printed = action_logs.BIG_LINES * (action_logs.BIG_LINE_CHARS + 1)
    assert printed - CAP_BYTES <= int(cut_bytes.group(1)) <= printed


def test_a_running_actions_lines_are_written_before_it_ends(worker_factory: WorkerFactory, redis_client: Any) -> None:
    worker_factory.start(1)
    tag = "gated-printer"
    run = flyte.with_runcontext(mode="remote").run(action_logs.gated_printer, tag)

    wait_until(lambda: read_action_logs(run.name) == [f"early-{tag}"], 20, "the running action's first line")
    assert not run.done()
    redis_client.set(tag + action_logs.GATE_SUFFIX, 1)
    assert run.outputs(timeout=RUN_DEADLINE_S).o0 == tag
    assert read_action_logs(run.name) == [f"early-{tag}", f"late-{tag}"]
