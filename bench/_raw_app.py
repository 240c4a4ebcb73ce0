"""The raw-Celery baseline of the benchmarks: a `noop` and a `sleep` task on a plain Celery app with a Redis result
backend.

Workers run it as `celery -A bench._raw_app worker -Q <queue> -E ...`; the app is configured from the environment
(`BENCH_RAW_BROKER_URL`, `BENCH_RAW_BACKEND_URL`, `BENCH_RAW_QUEUE`, `BENCH_RAW_STOCK`, `BENCH_RAW_RESULT_EXPIRES_S`,
`BENCH_RAW_BROKER_MAX_CONNECTIONS`). Unless `BENCH_RAW_STOCK=1`, delivery mirrors what flyte-celery's app sets (JSON,
late acks, prefetch 1, `task-sent` events), so the two sides differ only by the framework's own work, not by settings.
"""

from __future__ import annotations

import os
import time
from typing import Final

from celery import Celery

NOOP_TASK: Final = "bench_raw.noop"
SLEEP_TASK: Final = "bench_raw.sleep"
DEFAULT_URL: Final = "redis://127.0.0.1:6379/14"
DEFAULT_QUEUE: Final = "bench-raw"


def make_raw_app(
    broker_url: str,
    backend_url: str,
    queue: str,
    *,
    stock: bool = False,
    result_expires_s: int | None = None,
    broker_max_connections: int | None = None,
) -> Celery:
    """A Celery app with the `noop` and `sleep` tasks routed to `queue`.

    Args:
        broker_url: The Redis broker.
        backend_url: The Redis result backend (`join_native` and `.get()` read results from it).
        queue: The default queue, on which the bench's raw workers listen.
        stock: True keeps Celery's default delivery (early acks, prefetch x4); False mirrors flyte-celery's.
        result_expires_s: How long results stay in Redis (None: Celery's default, one day).
        broker_max_connections: The size of kombu's Redis connection pool (None: kombu's 10). A `-P gevent` worker
            with late acks needs about one per greenlet: they ack at once, and an ack that finds the pool empty
            fails, which resets the worker's broker connection and loses results.

    Returns:
        The app; its tasks are `app.tasks[NOOP_TASK]` and `app.tasks[SLEEP_TASK]`.
    """
    app = Celery("bench_raw", broker=broker_url, backend=backend_url, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        # flyte-celery sends task events by default; the raw worker runs with -E and the client sends task-sent.
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )
    if result_expires_s is not None:
        app.conf.result_expires = result_expires_s
    transport_options: dict[str, int] = {}
    if not stock:
        app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1)
        transport_options["visibility_timeout"] = 12 * 3600
    if broker_max_connections is not None:
        transport_options["max_connections"] = broker_max_connections
    if transport_options:
        app.conf.broker_transport_options = transport_options

    @app.task(name=NOOP_TASK, shared=False)  # type: ignore[untyped-decorator]
    def noop(i: int) -> int:
        return i

    @app.task(name=SLEEP_TASK, shared=False)  # type: ignore[untyped-decorator]
    def sleep(i: int, seconds: float) -> int:
        time.sleep(seconds)  # cooperative on a `-P gevent` worker, which monkeypatches `time.sleep`
        return i

    return app


def _app_from_environment() -> Celery:
    return make_raw_app(
        os.environ.get("BENCH_RAW_BROKER_URL", DEFAULT_URL),
        os.environ.get("BENCH_RAW_BACKEND_URL", DEFAULT_URL),
        os.environ.get("BENCH_RAW_QUEUE", DEFAULT_QUEUE),
        stock=os.environ.get("BENCH_RAW_STOCK") == "1",
        result_expires_s=_int_from_environment("BENCH_RAW_RESULT_EXPIRES_S"),
        broker_max_connections=_int_from_environment("BENCH_RAW_BROKER_MAX_CONNECTIONS"),
    )


def _int_from_environment(name: str) -> int | None:
    return int(os.environ[name]) if name in os.environ else None


app = _app_from_environment()
noop = app.tasks[NOOP_TASK]

__all__ = ["NOOP_TASK", "SLEEP_TASK", "app", "make_raw_app", "noop"]
