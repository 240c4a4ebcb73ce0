"""`flyte-celery worker`: a thin wrapper over `celery -A flyte_celery.worker worker`."""

from __future__ import annotations

import os
import sys

import click

from flyte_celery._config_loader import find_config_file, get_settings


@click.command(
    "worker",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": ["-h", "--help"]},
)
@click.option("-Q", "--queues", help="Comma-separated queues to consume (default: run.queue from the config).")
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    help="Pool processes (default: worker.concurrency, else the CPU count).",
)
@click.option("-l", "--loglevel", default="info", show_default=True, help="Celery's log level.")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def worker_command(
    ctx: click.Context, queues: str | None, concurrency: int | None, loglevel: str, celery_args: tuple[str, ...]
) -> None:
    """Start a worker of the fleet; any other option is passed to `celery worker` as is."""
    settings = get_settings()
    command = [sys.executable, "-m", "celery", "-A", "flyte_celery.worker", "worker"]
    command += ["-Q", queues or settings.run.queue, "-l", loglevel]
    concurrency = concurrency or settings.worker.concurrency
    if concurrency is not None:
        command += ["-c", str(concurrency)]
    command += list(celery_args)
    config = find_config_file(ctx.parent.params.get("config") if ctx.parent else None)
    if config is not None:
        os.environ["FLYTE_CELERY_CONFIG"] = str(config)
    os.execv(sys.executable, command)
