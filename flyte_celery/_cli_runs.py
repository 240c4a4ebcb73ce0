"""`flyte-celery runs`, `get RUN` and `abort RUN`, and following a remote run (`run --follow`): thin layers on
`flyte_celery.remote.Run`; what they print is drawn by `_cli_view`.

Runs are listed from the cluster's Redis: remote and hybrid runs. A local run lives in the process that ran it.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

import click
from redis.exceptions import RedisError
from rich.console import Console
from rich.live import Live

from flyte_celery._cli_view import OUTPUT_TAIL, failures, fit, live_view, run_summary, runs_table, totals
from flyte_celery._context import ROOT_ACTION_NAME
from flyte_celery._report_pages import report_pages
from flyte_celery._run import ActionPhase, Run
from flyte_celery._run_details import Action, ErrorInfo, RunDetails
from flyte_celery.errors import BaseRuntimeError, RunNotFoundError, RuntimeSystemError, StorageError

FOLLOW_POLL_S: Final = 0.5  # how often a followed run's records are read
PLAIN_FAILURES: Final = 5  # failed actions a followed run reports line by line without a terminal
DEFAULT_RUNS_LIMIT: Final = 20
ABORT_WAIT_S: Final = 10.0
DEFAULT_WIDTH: Final = 120  # of plain output when the terminal's is unknown (a pipe)
PHASES: Final = [phase.value for phase in ActionPhase]
T = TypeVar("T")


@click.command("runs")
@click.option(
    "--phase", "phases", multiple=True, type=click.Choice(PHASES, case_sensitive=False), help="Only runs in this "
    "phase (repeatable).",
)  # fmt: skip
@click.option("-p", "--project", help="Only runs of this project.")
@click.option("-d", "--domain", help="Only runs of this domain.")
@click.option("--name-prefix", "--prefix", "name_prefix", help="Only runs whose name starts with this.")
@click.option("--limit", type=click.IntRange(min=1), default=DEFAULT_RUNS_LIMIT, show_default=True, help="Most runs.")
def runs_command(
    phases: tuple[str, ...], project: str | None, domain: str | None, name_prefix: str | None, limit: int
) -> None:
    """Recent runs on the cluster, newest first (remote and hybrid runs; local runs are not recorded)."""
    found = _cluster_call(
        lambda: list(Run.listall(phases or None, project=project, domain=domain, name_prefix=name_prefix, limit=limit))
    )
    runs = _cluster_call(lambda: [run.details() for run in found])
    if not runs:
        click.echo("no runs found" + (" matching the filters" if phases or project or domain or name_prefix else ""))
        return
    _echo_lines(runs_table(runs))


@click.command("get")
@click.argument("run_name", metavar="RUN")
@click.option("--full", is_flag=True, help="Every failure, every report and whole tracebacks.")
def get_command(run_name: str, full: bool) -> None:
    """A run: phase, inputs, outputs or error, its actions counted per task, the first failures, report links."""
    run = _find(run_name)
    details, actions = _cluster_call(lambda: (run.details(), run.actions()))
    outputs, error = _outcome(run, details)
    reports = _reports(details.run_base_dir)
    failed = failures(actions)
    output = _last_output(run_name, failed[0].name) if failed else []
    lines = run_summary(
        details, actions, outputs=outputs, error=error, reports=reports, full=full, failure_output=output
    )
    _echo_lines(lines)


@click.command("abort")
@click.argument("run_name", metavar="RUN")
@click.option("--reason", default="aborted with `flyte-celery abort`", show_default=True, help="Recorded as why.")
def abort_command(run_name: str, reason: str) -> None:
    """Abort a run: every action of it is cancelled, and it ends as aborted."""
    run = _find(run_name)
    details = _cluster_call(run.details)
    if details.done():
        click.echo(f"run {run_name} already ended: {details.phase.value}")
        return
    _cluster_call(lambda: run.abort(reason=reason))
    click.echo(f"run {run_name}: {run.wait(timeout=ABORT_WAIT_S).value}")


def follow(run: Run) -> None:
    """Show a remote run until it ends: live on a terminal (its tree, or its actions counted per task, and its first
    failure), else a line per phase change and per failed action. Ctrl-C raises KeyboardInterrupt here at once."""
    from flyte_celery._celery.catalog import ClusterCatalog  # read in this thread, so Ctrl-C reaches it at once

    catalog = ClusterCatalog()
    console = Console()
    if console.is_terminal and not console.is_dumb_terminal:
        with Live(console=console, auto_refresh=False, transient=False) as live:
            while (snapshot := catalog.snapshot(run.name)) is not None:
                live.update(live_view(*snapshot, console.height), refresh=True)
                if snapshot[0].done():
                    return
                time.sleep(FOLLOW_POLL_S)
        return
    plain = PlainFollower()
    while (snapshot := catalog.snapshot(run.name)) is not None:
        _echo_lines(plain.update(*snapshot))
        if snapshot[0].done():
            return
        time.sleep(FOLLOW_POLL_S)


class PlainFollower:
    """The lines a followed run prints without a terminal: its phase when it changes, and its failed actions."""

    def __init__(self) -> None:
        self.phase: ActionPhase | None = None
        self.reported: set[str] = set()

    def update(self, details: RunDetails, actions: Sequence[Action]) -> list[str]:
        lines = []
        failed = [a for a in failures(actions) if a.name not in self.reported]
        for action in failed:
            if len(self.reported) < PLAIN_FAILURES:
                lines.append(f"failed: {action.name} {action.task_name} {action.inputs_repr}: {action.error_info}")
            elif len(self.reported) == PLAIN_FAILURES:
                lines.append("failed: ... (more failures: `flyte-celery get RUN` counts them)")
            self.reported.add(action.name)
        if details.phase != self.phase:
            self.phase = details.phase
            lines.append(f"phase: {details.phase.value}" + (f" ({totals(actions)})" if details.done() else ""))
        return lines


def _find(name: str) -> Run:
    try:
        return _cluster_call(lambda: Run.get(name))
    except RunNotFoundError:
        raise click.ClickException(
            f"no run named {name!r} on the cluster (runs are kept for retention.runs_s; local runs are known only "
            "to the process that ran them)"
        ) from None


def _outcome(run: Run, details: RunDetails) -> tuple[str | None, ErrorInfo | None]:
    """The root's outputs (through its sealed result) or its error with the whole traceback; from the index when
    the result cannot be loaded here (its types may live in modules this process cannot import)."""
    if not details.done():
        return None, None
    try:
        outputs = run.outputs(timeout=ABORT_WAIT_S)
    except BaseRuntimeError as err:
        if details.phase is ActionPhase.SUCCEEDED:  # the value did not load here: show the recorded repr
            return _root_repr(run), None
        return None, ErrorInfo(type(err).__name__, err.code, err.kind, str(err), err.traceback_text or "")
    except Exception as exc:
        return f"<cannot be read here: {type(exc).__name__}: {exc}>", details.error_info
    return ", ".join(f"{name}={value!r}" for name, value in outputs.named_outputs.items()), None


def _root_repr(run: Run) -> str | None:
    root = next((a for a in run.actions() if a.name == ROOT_ACTION_NAME), None)
    return root.outputs_repr if root is not None else None


def _reports(run_base_dir: str) -> list[str]:
    """The run's report pages, or a line saying why they cannot be listed."""
    try:
        return report_pages(run_base_dir)
    except (StorageError, OSError) as exc:
        return [f"(cannot list {run_base_dir}: {exc})"]


def _last_output(run: str, action: str) -> list[str]:
    """The last lines an action printed and logged, when they can be read (else none: `get` shows the rest)."""
    from flyte_celery._celery.action_logs import read_action_logs

    try:
        return read_action_logs(run, action, tail=OUTPUT_TAIL)
    except (BaseRuntimeError, RedisError, ValueError):
        return []


def _cluster_call(call: Callable[[], T]) -> T:
    """`call()`, its failures as the CLI's: the cluster unreachable (exit 1), a bad filter (a usage error)."""
    try:
        return call()
    except RuntimeSystemError as exc:
        raise click.ClickException(str(exc)) from None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _echo_lines(lines: Sequence[str]) -> None:
    width = shutil.get_terminal_size((DEFAULT_WIDTH, 40)).columns if sys.stdout.isatty() else DEFAULT_WIDTH
    for line in fit(lines, width):
        click.echo(line)
