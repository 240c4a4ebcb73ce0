"""A run's log level and format apply to what its actions log on the worker, and only to them."""

from __future__ import annotations

import json
import logging

import flyte_celery as flyte
from tests._services import wait_until
from tests._workers import WorkerFactory
from tests.behaviour.programs import logs


def _json_records(text: str, marker: str) -> list[dict[str, object]]:
    records = []
    for line in text.splitlines():
        start = line.find("{")
        if marker in line and start >= 0:
            records.append(json.loads(line[start:]))
    return records


def test_log_format_and_level_of_a_run_apply_on_the_worker(worker_factory: WorkerFactory) -> None:
    worker = worker_factory.start(concurrency=1)
    json_run = flyte.with_runcontext(mode="remote", log_format="json", user_log_level=logging.DEBUG).run(
        logs.chatty, "jsonword"
    )
    plain_run = flyte.with_runcontext(mode="remote").run(logs.chatty, "plainword")
    assert json_run.wait(timeout=60) == flyte.ActionPhase.SUCCEEDED
    assert plain_run.wait(timeout=60) == flyte.ActionPhase.SUCCEEDED
    action = json_run.outputs().o0

    wait_until(lambda: "info says plainword" in worker.log(), 15, "the plain run's record in the worker log")
    records = _json_records(worker.log(), "jsonword")
    assert [r["message"] for r in records] == ["debug says jsonword", "info says jsonword"]
    assert all(r["run_name"] == json_run.name and r["action_name"] == action for r in records)
    plain_lines = [line for line in worker.log().splitlines() if "plainword" in line]
    assert plain_lines, "the default (INFO, console) run logged nothing"
    assert all("debug says" not in line and '"message"' not in line for line in plain_lines)
    assert any(f"[{plain_run.name}]" in line for line in plain_lines)
