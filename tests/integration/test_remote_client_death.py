"""A remote run belongs to the cluster: killing the client that started it changes nothing; names are unique."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

import flyte_celery as flyte
from flyte_celery.errors import RunAlreadyExistsError, RunNotFoundError
from tests._workers import REPO_ROOT, WorkerFactory
from tests.integration.programs import remote_tasks

RUN_DEADLINE_S = 30.0
CLIENT_DEADLINE_S = 30.0
TASK_SECONDS = 1.0

CLIENT = f"""
import flyte_celery as flyte
from tests.integration.programs import remote_tasks

flyte.init_from_config()
run = flyte.with_runcontext(mode="remote").run(remote_tasks.slow_double, 21, {TASK_SECONDS})
print(run.name, flush=True)
# Keep the client alive until it is killed, so the kill (not a clean exit) is what ends it.
import threading
threading.Event().wait()
"""


def test_killing_the_client_after_run_returned_does_not_stop_the_run(worker_factory: WorkerFactory) -> None:
    worker = worker_factory.start(concurrency=1)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO_ROOT
    )
    try:
        assert client.stdout is not None
        name = client.stdout.readline().decode().strip()
        client.send_signal(signal.SIGKILL)
        assert client.wait(timeout=CLIENT_DEADLINE_S) == -signal.SIGKILL
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        stderr = client.stderr.read().decode(errors="replace") if client.stderr else ""
        for stream in (client.stdout, client.stderr):
            if stream is not None:
                stream.close()
    assert name, f"the client printed no run name; its stderr:\n{stderr[-3000:]}"

    run = flyte.Run.get(name)  # not started by this process: found on the cluster
    assert run.name == name
    assert not run.done(), "the run ended before the client was killed: the test proves nothing"
    assert run.wait(timeout=RUN_DEADLINE_S) == flyte.ActionPhase.SUCCEEDED, worker.log()[-3000:]
    assert run.outputs().o0 == 42
    with pytest.raises(RunAlreadyExistsError):
        flyte.with_runcontext(mode="remote", name=name).run(remote_tasks.slow_double, 1, 0.0)
    assert flyte.Run.get(name).outputs().o0 == 42


def test_a_run_name_cannot_be_reused_and_unknown_names_are_not_found(worker_factory: WorkerFactory) -> None:
    worker_factory.start(concurrency=1)
    first = flyte.with_runcontext(mode="remote").run(remote_tasks.add_one, 1)
    with pytest.raises(RunAlreadyExistsError) as caught:
        flyte.with_runcontext(mode="remote", name=first.name).run(remote_tasks.add_one, 100)
    assert caught.value.run_name == first.name
    assert first.wait(timeout=RUN_DEADLINE_S) == flyte.ActionPhase.SUCCEEDED
    assert first.outputs().o0 == 2  # the refused run did not touch the first one's result
    with pytest.raises(RunNotFoundError):
        flyte.Run.get("nope")
