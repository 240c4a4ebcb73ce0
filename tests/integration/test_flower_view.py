"""Flower shows every action readably: its task's name, its inputs, its run and action, and the tree's links."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flyte_celery as flyte
from flyte_celery._celery.envelope import celery_task_id
from tests._services import wait_until
from tests._workers import REPO_ROOT, WorkerFactory
from tests.integration.programs import trees

FLOWER_START_DEADLINE_S = 30.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def flower(worker_factory: WorkerFactory, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    log = tmp_path / "flower.log"
    env = {**os.environ, **worker_factory.env, "FLOWER_UNAUTHENTICATED_API": "true"}
    command = [sys.executable, "-m", "celery", "-A", "flyte_celery.worker", "flower", f"--port={port}",
               "--address=127.0.0.1"]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _get(f"{url}/api/workers?refresh=0") is not None, FLOWER_START_DEADLINE_S, "Flower")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


def test_flower_shows_actions_by_task_name_with_inputs_and_tree_links(
    worker_factory: WorkerFactory, flower: str
) -> None:
    worker_factory.start(concurrency=1)
    run = flyte.with_runcontext(mode="remote", labels={"team": "ml"}, annotations={"ticket": "42"}).run(
        trees.tree, 1, 2
    )
    assert run.wait(timeout=60) == flyte.ActionPhase.SUCCEEDED
    root_id = celery_task_id(run.name, "a0")

    def tasks_of_run() -> dict[str, Any] | None:
        tasks = _get(f"{flower}/api/tasks") or {}
        mine = {tid: t for tid, t in tasks.items() if tid.startswith(run.name)}
        done = [t for t in mine.values() if t.get("state") == "SUCCESS"]
        return mine if len(done) == 3 else None

    tasks = wait_until(tasks_of_run, 30, "Flower to see the root and its two children succeed")
    assert isinstance(tasks, dict)
    root = tasks[root_id]
    assert root["name"] == "trees.tree"
    assert "depth=1" in root["args"]
    assert "fanout=2" in root["args"]
    assert run.name in root["kwargs"]
    assert "'labels': {'team': 'ml'}" in root["kwargs"]
    assert "'annotations': {'ticket': '42'}" in root["kwargs"]
    children = [t for tid, t in tasks.items() if tid != root_id]
    assert {c["name"] for c in children} == {"trees.tree"}
    assert all("depth=0" in c["args"] for c in children)
    assert all(c["root_id"] == root_id and c["parent_id"] == root_id for c in children)


def test_flower_shows_failed_actions_as_failures_with_their_error(worker_factory: WorkerFactory, flower: str) -> None:
    worker_factory.start(concurrency=1)
    run = flyte.with_runcontext(mode="remote").run(trees.mixed, 4)
    assert run.outputs(timeout=60).o0 == [0, -1, 20, -1]

    def leaves_done() -> dict[str, Any] | None:
        tasks = _get(f"{flower}/api/tasks") or {}
        leaves = {
            tid: t for tid, t in tasks.items() if tid.startswith(run.name) and t.get("name") == "trees.shaky_leaf"
        }
        settled = [t for t in leaves.values() if t.get("state") in ("SUCCESS", "FAILURE")]
        return leaves if len(settled) == 4 else None

    leaves = wait_until(leaves_done, 30, "Flower to see the four leaves end")
    assert isinstance(leaves, dict)
    states = sorted(t["state"] for t in leaves.values())
    assert states == ["FAILURE", "FAILURE", "SUCCESS", "SUCCESS"]
    for leaf in leaves.values():
        if leaf["state"] == "FAILURE":
            assert "ValueError" in leaf["exception"]
            assert "odd leaf" in leaf["exception"]
            assert "raise ValueError" in leaf["traceback"], leaf["traceback"]  # the user's code, not the body's
        else:
            assert leaf["result"].strip("'\"") in ("0", "20")  # a short repr of the output


def test_run_url_opens_the_root_actions_page_in_flower(
    worker_factory: WorkerFactory, flower: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYTE_CELERY_FLOWER_URL", flower)
    flyte.init_from_config()
    worker_factory.start(concurrency=1)
    run = flyte.with_runcontext(mode="remote").run(trees.tree, 0, 1)
    assert run.wait(timeout=60) == flyte.ActionPhase.SUCCEEDED
    assert run.url == f"{flower}/task/{celery_task_id(run.name, 'a0')}"

    def root_page() -> str | None:
        try:
            with urllib.request.urlopen(run.url, timeout=2) as response:
                page = response.read().decode()
        except OSError:  # Flower answers 404 until its event stream has the task
            return None
        return page if "trees.tree" in page else None

    page = wait_until(root_page, 30, "Flower to serve the root action's page")
    assert run.name in str(page)
