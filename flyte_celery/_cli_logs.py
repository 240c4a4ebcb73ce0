"""`flyte-celery logs RUN [ACTION]`: what an action of a run on the fleet printed and logged."""

from __future__ import annotations

import click
from redis.exceptions import RedisError

from flyte_celery._context import ROOT_ACTION_NAME
from flyte_celery._init import current_settings
from flyte_celery._urls import redact
from flyte_celery.errors import BaseRuntimeError


@click.command("logs", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run")
@click.argument("action", default=ROOT_ACTION_NAME)
@click.option("-n", "--tail", type=click.IntRange(min=0), help="Only the last N lines.")
def logs_command(run: str, action: str, tail: int | None) -> None:
    """Print the lines ACTION (default: the root action, a0) of RUN printed and logged on the fleet.

    Each action keeps its first and last lines up to log.capture_max_bytes, for retention.results_s; a running
    action's lines appear once it has run a couple of seconds.
    """
    from flyte_celery._celery.action_logs import read_action_logs

    try:
        lines = read_action_logs(run, action, tail=tail)
    except (BaseRuntimeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    except RedisError as exc:
        url = redact(current_settings().redis_url_resolved())
        raise click.ClickException(f"cannot read the logs from Redis at {url}: {exc}") from None
    for line in lines:
        click.echo(line)
