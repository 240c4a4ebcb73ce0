"""The Celery app factory: broker, queues, serialization and events from the settings; the one entry task."""

from __future__ import annotations

from typing import Any, Final

from celery import Celery

from flyte_celery._celery.guarded_consumer import GUARDED_CONSUMER, guard_app
from flyte_celery._celery.publisher import ENTRY_TASK
from flyte_celery._celery.request import ActionRequest
from flyte_celery._config_model import Settings

APP_NAME: Final = "flyte_celery"
# Settings that end pool processes which host suspended parents (see the README's worker model).
REFUSED_SETTINGS: Final = ("worker_max_tasks_per_child", "worker_max_memory_per_child")


def make_app(settings: Settings) -> Celery:
    """A Celery app for these settings, with the entry task registered. Any `celery:` setting wins over ours."""
    app = Celery(APP_NAME, broker=settings.broker.url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_default_queue=settings.run.queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_send_task_events=True,
        task_send_sent_event=False,  # ours, named after the action's task (see publisher.py)
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 12 * 3600},
    )
    guard_app(app, settings)  # before the user's settings: a `worker_consumer` of theirs replaces the guard
    app.conf.update(settings.celery)
    if settings.worker.concurrency is not None and "worker_concurrency" not in settings.celery:
        app.conf.worker_concurrency = settings.worker.concurrency

    @app.task(name=ENTRY_TASK, bind=True, shared=False, Request=ActionRequest)  # type: ignore[untyped-decorator]
    def run_action(self: Any, *args: Any, **kwargs: Any) -> str:
        # Any arguments are accepted here, so a malformed message reaches the body, which records why it is bad.
        from flyte_celery._celery.task_body import run_action_body

        return run_action_body(self, args, kwargs, settings)

    return app


def refused_settings(app: Celery, options: dict[str, Any]) -> list[str]:
    """The settings (app config or `celery worker` options) that would break the worker model, each with why."""
    problems = []
    for name in REFUSED_SETTINGS:
        value = options.get(name.removeprefix("worker_")) or app.conf.get(name)
        if value:
            problems.append(f"{name}={value}: recycling a pool process drops the parents suspended in it")
    if options.get("autoscale"):
        problems.append(f"--autoscale={options['autoscale']}: shrinking reaps processes that host suspended parents")
    consumer = app.conf.get("worker_consumer")
    if consumer != GUARDED_CONSUMER:
        problems.append(f"worker_consumer={consumer}: it would drop the check that keeps bad messages from the worker")
    return problems
