"""A bad message on the queue never kills a worker; one that names its action fails that action for its waiters.

The messages are published with a Celery app built the way clients build theirs (`make_app(settings)`), on the
test's own queue, so they reach the worker exactly as a buggy or hostile client's would.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import pickle
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

import flyte_celery as flyte
from flyte_celery._celery.app import make_app
from flyte_celery._celery.envelope import HEADER, ActionMessage, Envelope, RunContextMessage
from flyte_celery._celery.outcome import Outcome
from flyte_celery._celery.runtime import ENTRY_TASK, Runtime
from flyte_celery._celery.signing import sign
from flyte_celery._config_loader import load_settings
from flyte_celery._config_model import Settings
from flyte_celery.errors import BaseRuntimeError, MessageDecodeError
from tests._services import wait_until
from tests._workers import Worker, WorkerFactory
from tests.integration.programs import remote_tasks

RUN_DEADLINE_S = 30.0
HANDLED_DEADLINE_S = 20.0
ROOT = "a0"


class Publisher:
    """Publishes raw entry-task messages to the worker's queue and reads the result records they leave."""

    def __init__(self, worker: Worker, queue: str) -> None:
        self.settings: Settings = load_settings()
        self.app: Celery = make_app(self.settings)
        self.worker = worker
        self.queue = queue

    def publish(self, args: tuple[Any, ...], headers: dict[str, Any] | None) -> str:
        """Send one message; returns its Celery task id."""
        task_id = f"bad-{secrets.token_hex(6)}"
        # send_task, not apply_async: the client-side argument check must not stop a malformed message.
        self.app.send_task(ENTRY_TASK, args=args, task_id=task_id, queue=self.queue, headers=headers or {})
        return task_id

    def wait_handled(self, task_id: str) -> str:
        """Wait for the worker to log the end of the message's task; returns that log line."""
        pattern = re.compile(rf"Task {re.escape(ENTRY_TASK)}\[{re.escape(task_id)}\] (succeeded|raised|failed).*")

        def line() -> str | None:
            found = pattern.search(self.worker.log())
            return found.group(0) if found else None

        return str(wait_until(line, HANDLED_DEADLINE_S, f"the worker to handle message {task_id}"))

    def recorded_outcome(self, run: str, action: str) -> Outcome:
        """The result record of `run`/`action`, read (and if need be waited for) through a `Runtime`."""

        async def read() -> Outcome:
            runtime = Runtime(self.settings, self.app)
            await runtime.start()
            try:
                return await asyncio.wait_for(runtime.wait_for(run, action, None), HANDLED_DEADLINE_S)
            finally:
                await runtime.close()

        return asyncio.run(read())

    def close(self) -> None:
        self.app.close()


@pytest.fixture
def cluster(
    worker_factory: WorkerFactory, redis_client: Any
) -> Iterator[tuple[Worker, Publisher, dict[bytes, bytes], str]]:
    worker = worker_factory.start(concurrency=1)
    publisher = Publisher(worker, worker_factory.queue)
    # A real run first: its bundle digest and run record make the "valid-looking" messages below.
    run = flyte.with_runcontext(mode="remote").run(remote_tasks.add_one, 1)
    assert run.wait(timeout=RUN_DEADLINE_S) == flyte.ActionPhase.SUCCEEDED
    assert run.outputs().o0 == 2
    record = redis_client.hgetall(f"flyte_celery:run:{run.name}")
    assert record, "the real run left no run record"
    yield worker, publisher, record, worker_factory.queue
    publisher.close()


def _envelope(run: str, bundle: str, queue: str) -> dict[str, Any]:
    envelope = Envelope(
        run=RunContextMessage(name=run, default_queue=queue),
        action=ActionMessage(name=ROOT, task=remote_tasks.add_one.name, bundle=bundle, queue=queue),
    )
    return envelope.encode()


def _fake_run_record(redis_client: Any, record: dict[bytes, bytes], run: str) -> None:
    # The record a client writes before publishing a root, so `flyte.Run.get(run)` finds the run.
    redis_client.hset(f"flyte_celery:run:{run}", mapping=record)


def _assert_still_serving(worker: Worker) -> None:
    run = flyte.with_runcontext(mode="remote").run(remote_tasks.add_one, 41)
    assert run.wait(timeout=RUN_DEADLINE_S) == flyte.ActionPhase.SUCCEEDED, worker.log()[-3000:]
    assert run.outputs().o0 == 42
    assert worker.process.poll() is None, "the worker process exited"
    assert "Unrecoverable error" not in worker.log()


def test_messages_without_a_usable_header_or_arguments_do_not_stop_the_worker(cluster: Any) -> None:
    worker, publisher, _, queue = cluster
    b64 = base64.b64encode(b"anything").decode("ascii")
    no_header = publisher.publish((b64,), None)
    not_an_object = publisher.publish((b64,), {HEADER: "garbage"})
    no_arguments = publisher.publish((), {HEADER: _envelope(f"no-args-{secrets.token_hex(4)}", "b", queue)})
    assert "rejected" in publisher.wait_handled(no_header)
    assert "rejected" in publisher.wait_handled(not_an_object)
    assert "rejected" in publisher.wait_handled(no_arguments)  # the body checks the arguments itself
    _assert_still_serving(worker)


def test_a_header_with_a_wrong_field_type_fails_the_action_it_names(cluster: Any) -> None:
    worker, publisher, _, queue = cluster
    run = f"bad-type-{secrets.token_hex(4)}"
    header = {"v": 1, "run": {"name": run}, "action": {"name": ROOT, "task": 123, "bundle": "b", "queue": queue}}
    task_id = publisher.publish((base64.b64encode(b"x").decode("ascii"),), {HEADER: header})
    assert "rejected" in publisher.wait_handled(task_id)
    error = publisher.recorded_outcome(run, ROOT).error
    assert isinstance(error, MessageDecodeError), error
    assert error.field == "action.task"
    assert "action.task" in str(error)
    _assert_still_serving(worker)


def test_an_unknown_schema_version_fails_the_action_it_names(cluster: Any, redis_client: Any) -> None:
    worker, publisher, record, queue = cluster
    run = f"bad-version-{secrets.token_hex(4)}"
    _fake_run_record(redis_client, record, run)
    header = {**_envelope(run, record[b"bundle"].decode(), queue), "v": 99}
    task_id = publisher.publish((base64.b64encode(b"x").decode("ascii"),), {HEADER: header})
    assert "rejected" in publisher.wait_handled(task_id)
    error = publisher.recorded_outcome(run, ROOT).error
    assert isinstance(error, MessageDecodeError), error
    assert error.field == "v"
    assert "99" in str(error)
    assert "upgrade the worker" in str(error)
    handle = flyte.Run.get(run)
    assert handle.phase == flyte.ActionPhase.FAILED
    with pytest.raises(MessageDecodeError, match="schema version"):
        handle.outputs()
    _assert_still_serving(worker)


def test_inputs_that_are_not_base64_fail_a_run_that_is_already_being_waited_for(
    cluster: Any, redis_client: Any
) -> None:
    worker, publisher, record, queue = cluster
    run = f"bad-b64-{secrets.token_hex(4)}"
    _fake_run_record(redis_client, record, run)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(lambda: flyte.Run.get(run).outputs())
        task_id = publisher.publish(
            ("*** not base64 ***",), {HEADER: _envelope(run, record[b"bundle"].decode(), queue)}
        )
        assert "rejected" in publisher.wait_handled(task_id)
        error = waiting.exception(timeout=HANDLED_DEADLINE_S)
    assert isinstance(error, MessageDecodeError), error
    assert "not base64" in str(error)
    _assert_still_serving(worker)


def test_inputs_of_the_wrong_json_type_fail_the_action(cluster: Any) -> None:
    worker, publisher, record, queue = cluster
    run = f"bad-json-{secrets.token_hex(4)}"
    task_id = publisher.publish((12345,), {HEADER: _envelope(run, record[b"bundle"].decode(), queue)})
    publisher.wait_handled(task_id)
    error = publisher.recorded_outcome(run, ROOT).error
    assert isinstance(error, MessageDecodeError), error
    _assert_still_serving(worker)


def test_badly_signed_inputs_fail_the_action(cluster: Any, redis_client: Any) -> None:
    worker, publisher, record, queue = cluster
    run = f"bad-sig-{secrets.token_hex(4)}"
    _fake_run_record(redis_client, record, run)
    forged = sign(b"not the cluster's signing key", pickle.dumps({"x": 1}))
    args = (base64.b64encode(forged).decode("ascii"),)
    task_id = publisher.publish(args, {HEADER: _envelope(run, record[b"bundle"].decode(), queue)})
    publisher.wait_handled(task_id)
    handle = flyte.Run.get(run)
    with pytest.raises(BaseRuntimeError, match="signature") as caught:
        handle.outputs()
    assert caught.value.code == "UnsafePayloadError"
    assert handle.phase == flyte.ActionPhase.FAILED
    _assert_still_serving(worker)


def test_a_message_with_a_valid_header_but_no_arguments_fails_the_action_it_names(
    cluster: Any, redis_client: Any
) -> None:
    _, publisher, record, queue = cluster
    run = f"no-args-{secrets.token_hex(4)}"
    task_id = publisher.publish((), {HEADER: _envelope(run, record[b"bundle"].decode(), queue)})
    assert "rejected" in publisher.wait_handled(task_id)
    assert redis_client.exists(f"flyte_celery:result:{run}:{ROOT}"), "no result record: a waiter would hang"
