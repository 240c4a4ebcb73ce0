"""The worker entry point: `celery -A flyte_celery.worker worker -Q <queue> [-c N]`.

Settings come from the config file and `FLYTE_CELERY_*` variables (`FLYTE_CELERY_BROKER_URL`,
`FLYTE_CELERY_REDIS_URL`, ...), as for clients. Worker settings that break the worker model
(`worker_max_tasks_per_child`, `worker_max_memory_per_child`, `--autoscale`) are refused at start.
"""

from __future__ import annotations

import sys
from typing import Any

from celery import signals

from flyte_celery._celery.app import make_app, refused_settings
from flyte_celery._config_loader import load_settings, set_settings

settings = load_settings()
set_settings(settings)
app = make_app(settings)


@signals.celeryd_init.connect  # type: ignore[untyped-decorator]
def _refuse_bad_settings(options: dict[str, Any] | None = None, **_: Any) -> None:
    # celeryd_init carries the command-line options; the worker's own attributes are not all set yet.
    problems = refused_settings(app, options or {})
    if problems:
        print("flyte-celery worker refused to start:\n  " + "\n  ".join(problems), file=sys.stderr)
        raise SystemExit(2)


@signals.worker_ready.connect  # type: ignore[untyped-decorator]
def _check_keys(**_: Any) -> None:
    from flyte_celery._celery.key_census import warn_about_unverifiable_keys

    warn_about_unverifiable_keys(settings)


@signals.worker_process_init.connect  # type: ignore[untyped-decorator]
def _start_runtime(**_: Any) -> None:
    from flyte_celery._celery.worker_process import worker_process

    worker_process(settings, app)


@signals.worker_process_shutdown.connect  # type: ignore[untyped-decorator]
def _hand_off(**_: Any) -> None:
    from flyte_celery._celery.worker_process import hand_off

    hand_off()


__all__ = ["app"]
