"""The `flyte-celery` command line: `flyte-celery [-c FILE] [-v] run [RUN OPTIONS] FILE TASK [--<input> VALUE ...]`.

`run` is a group whose sub-command is the file (a group of its tasks) and whose sub-sub-command is the task (a
command with one option per input), so `run FILE --help` lists the tasks and `run FILE TASK --help` the inputs.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final, TypeVar

import click
from click.core import ParameterSource

from flyte_celery._cli_dev import dev_command
from flyte_celery._cli_logs import logs_command
from flyte_celery._cli_params import input_option
from flyte_celery._cli_runs import abort_command, follow, get_command, runs_command
from flyte_celery._cli_worker import worker_command
from flyte_celery._context import MODES
from flyte_celery._init import current_settings, init_from_config
from flyte_celery._logging import LOG_FORMATS
from flyte_celery._run_options import CACHE_LOOKUP_SCOPES, COPY_STYLES
from flyte_celery._runner import with_runcontext
from flyte_celery._task import TaskTemplate
from flyte_celery.errors import BaseRuntimeError, RunOptionError

_F = TypeVar("_F", bound=Callable[..., Any])
_REQUEST_KEY: Final = "flyte_celery.cli.run_request"
_VERBOSE_KEY: Final = "flyte_celery.cli.verbose"
# Run-group parameters that are not `with_runcontext` arguments, and those that are, but under another name.
_CLI_ONLY_PARAMS: Final = frozenset({"local", "follow", "mode"})
_RUN_OPTION_NAMES: Final = {"env": "env_vars", "label": "labels", "annotation": "annotations"}
FAILURE_EXIT_CODE: Final = 1
FOLLOW_POLL_S: Final = 0.2  # how often the main thread checks on a followed run (Ctrl-C is seen at once anyway)


@dataclass(frozen=True)
class RunRequest:
    """What the `run` options ask for: the `with_runcontext` arguments the user gave, and whether to wait."""

    options: dict[str, Any]
    follow: bool


class LoadError(click.ClickException):
    """The user's file or module failed while it was imported: a failure of their code, so exit code 1."""

    exit_code = FAILURE_EXIT_CODE


def _key_values(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str] | None:
    if not values:
        return None
    result: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", ctx, param)
        result[key.strip()] = value
    return result


def _key_value_option(*decls: str, help: str) -> Callable[[_F], _F]:
    return click.option(*decls, multiple=True, callback=_key_values, metavar="KEY=VALUE", help=help)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Config file (default: $FLYTE_CELERY_CONFIG, ./config.yaml, ./.flyte-celery/, ~/.flyte-celery/).",
)
@click.option("-v", "--verbose", count=True, help="More logging: -v for INFO, -vv for DEBUG; also prints tracebacks.")
@click.version_option(package_name="flyte-celery", prog_name="flyte-celery")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, verbose: int) -> None:
    """Run Flyte 2 tasks in this process or on a Celery worker fleet."""
    ctx.meta[_VERBOSE_KEY] = verbose
    level = {0: None, 1: logging.INFO}.get(verbose, logging.DEBUG)
    try:
        init_from_config(config, log_level=level)
    except BaseRuntimeError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


class RunGroup(click.Group):
    """`run`: its only sub-command is a python file or module, resolved when it is named."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return []

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return TaskFileGroup(cmd_name, load_module(cmd_name))


class TaskFileGroup(click.Group):
    """One python file or module: its tasks are the sub-commands."""

    def __init__(self, target: str, module: ModuleType) -> None:
        super().__init__(
            target,
            help=f"Tasks in {target}.",
            subcommand_metavar="TASK [--<input> VALUE ...]",
            context_settings={"help_option_names": ["-h", "--help"]},
        )
        self.target = target
        self.tasks = find_tasks(module)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.tasks)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        task = self.tasks.get(cmd_name) or next(
            (t for t in self.tasks.values() if cmd_name in (t.name, t.short_name)), None
        )
        if task is None:
            if not self.tasks:
                raise click.UsageError(f"no task {cmd_name!r}: {self.target} defines no tasks", ctx)
            found = ", ".join(sorted(self.tasks))
            raise click.UsageError(f"no task {cmd_name!r} in {self.target}; tasks found: {found}", ctx)
        return TaskCommand(cmd_name, task)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _first_line(task.func.__doc__)) for name, task in sorted(self.tasks.items())]
        with formatter.section("Tasks"):
            formatter.write_dl(rows or [("(none)", "")])


class TaskCommand(click.Command):
    """One task: an option per input; invoking it starts the run."""

    def __init__(self, cmd_name: str, task: TaskTemplate[Any, Any]) -> None:
        params: list[click.Parameter] = [
            input_option(name, hint, default) for name, (hint, default) in task.interface.inputs.items()
        ]
        outputs = ", ".join(f"{name}: {_hint_name(hint)}" for name, hint in task.interface.outputs.items())
        super().__init__(
            cmd_name,
            params=params,
            help=inspect.getdoc(task.func) or f"Run task {task.name}.",
            short_help=_first_line(task.func.__doc__),
            epilog=f"Task {task.name}; outputs: {outputs or 'none'}.",
            context_settings={"help_option_names": ["-h", "--help"]},
        )
        self.task = task

    def invoke(self, ctx: click.Context) -> None:
        # Only the inputs given on the command line are passed, so the task's own defaults apply to the rest.
        inputs = {
            name: value
            for name, value in ctx.params.items()
            if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)
        }
        run_task(ctx, self.task, inputs)


@cli.group(
    cls=RunGroup,
    subcommand_metavar="FILE TASK [--<input> VALUE ...]",
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--mode", type=click.Choice(MODES), help="Where the run executes (default: from config, else local).")
@click.option("--local", is_flag=True, help="Shortcut for --mode local.")
@click.option("-p", "--project", help="Project of the run.")
@click.option("-d", "--domain", help="Domain of the run.")
@click.option("--org", help="Organisation of the run.")
@click.option("--name", help="Run name (default: generated); must be unique.")
@click.option("--version", help="Task version (default: computed from the code).")
@click.option("--queue", help="Celery queue for the run's actions (tasks' own queues win).")
@click.option("--interruptible/--no-interruptible", default=None, help="Force every task (non-)interruptible.")
@click.option("--raw-data-path", help="Prefix for offloaded data.")
@click.option("--run-base-dir", help="Prefix for the run's metadata.")
@click.option("--overwrite-cache", is_flag=True, help="Re-run cached tasks and overwrite their cache entries.")
@click.option("--disable-run-cache", is_flag=True, help="Neither read nor write the cache in this run.")
@click.option("--cache-lookup-scope", type=click.Choice(CACHE_LOOKUP_SCOPES), help="Where cache entries are shared.")
@click.option("--service-account", help="Service account of the run.")
@_key_value_option("-e", "--env", help="Environment variable for every task of the run (repeatable).")
@_key_value_option("--label", help="Label of the run (repeatable).")
@_key_value_option("--annotation", help="Annotation of the run (repeatable).")
@_key_value_option("--custom-context", help="Custom context entry for the whole run (repeatable).")
@click.option("--log-level", help="Framework log level: a name (debug, info, ...) or a number.")
@click.option("--user-log-level", help="Level of flyte_celery.logger in tasks.")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), help="Log line format.")
@click.option("--reset-root-logger", is_flag=True, help="Route the root logger through our format.")
@click.option("--copy-style", type=click.Choice(COPY_STYLES), help="What the code bundle holds (remote runs).")
@click.option("--dry-run", is_flag=True, help="Prepare the run but execute nothing.")
@click.option("--copy-bundle-to", help="With --dry-run, where to copy the code bundle.")
@click.option("--max-action-concurrency", type=int, help="Most actions of the run executing at once (0 or >= 2).")
@click.option("-f", "--follow", is_flag=True, help="Remote runs: follow the run (live on a TTY), print its outputs.")
@click.pass_context
def run(ctx: click.Context, /, **params: Any) -> None:
    """Run TASK from FILE (a python file, or a dotted module name) with the inputs given as --<input> VALUE.

    `run FILE --help` lists the tasks in FILE; `run FILE TASK --help` lists the inputs of TASK.
    """
    given = {
        name: value
        for name, value in params.items()
        if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)
    }
    options = {
        _RUN_OPTION_NAMES.get(name, name): value for name, value in given.items() if name not in _CLI_ONLY_PARAMS
    }
    mode = given.get("mode")
    if given.get("local"):
        if mode not in (None, "local"):
            raise click.UsageError(f"--local contradicts --mode {mode}", ctx)
        mode = "local"
    if mode is not None:
        options["mode"] = mode
    ctx.meta[_REQUEST_KEY] = RunRequest(options, follow=bool(given.get("follow")))


def _wait_interruptibly(handle: Any) -> None:
    """Wait for a run on a helper thread, so that Ctrl-C reaches this thread at once, whatever the wait is doing
    (asyncio's own Ctrl-C handling only cancels its task, and a cancellation can land where it is not seen)."""
    failure: list[BaseException] = []

    def wait() -> None:
        try:
            handle.wait()
        except BaseException as exc:  # re-raised in the main thread
            failure.append(exc)

    waiter = threading.Thread(target=wait, name="flyte-celery-follow", daemon=True)
    waiter.start()
    while waiter.is_alive():
        waiter.join(FOLLOW_POLL_S)
    if failure:
        raise failure[0]


def run_task(ctx: click.Context, task: TaskTemplate[Any, Any], inputs: dict[str, Any]) -> None:
    """Start the run, print its name and then its outputs (or its URL, for a remote run not followed).

    Raises:
        click.UsageError: On a bad run option (exit code 2).
        click.exceptions.Exit: With code 1 when the run fails.
    """
    request: RunRequest = ctx.meta[_REQUEST_KEY]
    options = dict(request.options)
    mode = options.get("mode") or current_settings().run.mode
    try:
        handle = with_runcontext(**options).run(task, **inputs)
        click.echo(f"run: {handle.name}")
        if options.get("dry_run"):
            click.echo("dry run: nothing was executed")
            return
        if mode == "remote" and not request.follow:
            if handle.url:  # empty when no Flower URL is configured
                click.echo(f"url: {handle.url}")
            return
        try:
            if mode == "remote":
                follow(handle)  # a live view on a terminal, else a line per phase change and failure
            else:
                _wait_interruptibly(handle)
        except KeyboardInterrupt:
            # Ctrl-C on a followed run stops the run itself, not just this client.
            if mode != "local":
                click.echo(f"aborting run {handle.name} ...", err=True)
                handle.abort(reason="Ctrl-C on the client following the run")
            raise click.exceptions.Exit(130) from None
        outputs = handle.outputs()
    except RunOptionError as exc:
        raise click.UsageError(str(exc), ctx) from None
    except click.exceptions.Exit:
        raise
    except Exception as exc:
        report_failure(exc, verbose=ctx.meta.get(_VERBOSE_KEY, 0))
        raise click.exceptions.Exit(FAILURE_EXIT_CODE) from None
    if task.interface.outputs:
        for name, value in outputs.named_outputs.items():
            click.echo(f"{name}={value!r}")


def report_failure(exc: BaseException, *, verbose: int) -> None:
    """Print a failed run's error to stderr: type, code and message, where it happened, and the child's traceback."""
    if isinstance(exc, BaseRuntimeError):
        click.echo(f"Error: {type(exc).__name__} (code={exc.code}, kind={exc.kind}): {exc}", err=True)
        where = {"run": exc.run_name, "action": exc.action_name, "task": exc.task_name}
        located = ", ".join(f"{key} {value}" for key, value in where.items() if value)
        if located:
            click.echo(f"  in {located}", err=True)
        if exc.traceback_text:
            click.echo(exc.traceback_text.rstrip(), err=True)
            return
    else:
        click.echo(f"Error: {type(exc).__name__}: {exc}", err=True)
    if verbose:
        click.echo("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip(), err=True)


def load_module(target: str) -> ModuleType:
    """Import `target`: a python file (as a module named after its path from the first non-package directory, which
    goes on `sys.path`, so pickles of its objects resolve), or else a dotted module name (the cwd goes on `sys.path`).

    Raises:
        click.BadParameter: If there is no such file or module, or its module name is taken by another module.
        LoadError: If importing it raises.
    """
    path = Path(target)
    if target.endswith(".py") or os.sep in target or path.exists():
        if not path.is_file():
            raise click.BadParameter(f"no such python file: {target}", param_hint="FILE")
        return _import_file(path.resolve(), target)
    _prepend_sys_path(Path.cwd())
    return _import(target, target)


def _import_file(path: Path, target: str) -> ModuleType:
    root, parts = path.parent, [path.stem]
    while (root / "__init__.py").is_file():
        root, parts = root.parent, [root.name, *parts]
    module_name = ".".join(parts)
    existing = sys.modules.get(module_name)
    if existing is not None and _module_path(existing) != path:
        raise click.BadParameter(
            f"{target} would be imported as module {module_name!r}, but that name is already taken by "
            f"{_module_path(existing) or 'a built-in module'}; rename the file",
            param_hint="FILE",
        )
    _prepend_sys_path(root)
    module = _import(module_name, target)
    if _module_path(module) != path:
        raise click.BadParameter(
            f"importing {module_name!r} found {_module_path(module)}, not {target}; rename the file", param_hint="FILE"
        )
    return module


def _import(module_name: str, target: str) -> ModuleType:
    importlib.invalidate_caches()
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise click.BadParameter(f"no such python file or module: {target}", param_hint="FILE") from None
        raise _load_error(target, exc) from None
    except Exception as exc:
        raise _load_error(target, exc) from None


def _load_error(target: str, exc: BaseException) -> LoadError:
    # Show the user's frames only: the importlib and CLI frames above them say nothing about their code.
    report = traceback.TracebackException.from_exception(exc)
    report.stack = traceback.StackSummary.from_list(
        [frame for frame in report.stack if not _is_loader_frame(frame.filename)]
    )
    text = "".join(report.format()).rstrip()
    return LoadError(f"could not import {target}: {type(exc).__name__}: {exc}\n{text}")


def _is_loader_frame(filename: str) -> bool:
    return filename in (__file__, importlib.__file__) or filename.startswith("<frozen")


def _module_path(module: ModuleType) -> Path | None:
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if file else None


def _prepend_sys_path(directory: Path) -> None:
    entry = str(directory)
    if entry not in sys.path:
        sys.path.insert(0, entry)


def find_tasks(module: ModuleType) -> dict[str, TaskTemplate[Any, Any]]:
    """The tasks in `module`, by attribute name."""
    return {name: value for name, value in vars(module).items() if isinstance(value, TaskTemplate)}


def _first_line(doc: str | None) -> str:
    return inspect.cleandoc(doc).splitlines()[0] if doc and doc.strip() else ""


def _hint_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else repr(hint).replace("typing.", "")


cli.add_command(worker_command)
cli.add_command(runs_command)
cli.add_command(get_command)
cli.add_command(abort_command)
cli.add_command(dev_command)
cli.add_command(logs_command)


def main() -> None:
    """The `flyte-celery` console script."""
    cli(prog_name="flyte-celery")
