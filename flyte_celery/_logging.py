"""The framework and user loggers, their formats, and the run/action context stamped on every line.

Two loggers, both non-propagating so nothing is printed twice through the root logger:

- `flyte_celery` (the framework, `system_logger`), WARNING by default;
- `flyte_celery.user` (for task authors, `user_logger`), INFO by default.

Importing this module gives both loggers a plain console handler on stderr and touches nothing else; the root
logger is only changed by `configure_logging`. The run, action and task names come from a provider registered with
`set_log_context_provider`, so this module never imports the task context. Our handlers mark the lines they write
(`writing_formatted_line`), so a stream that turns writes into records (Celery's redirect of a worker's stderr, the
per-action capture of `_log_capture`) passes them on as they are.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any, Literal, Optional

LogFormat = Literal["console", "json"]
# (run name, action name, task name); any of them may be unknown.
LogContext = tuple[Optional[str], Optional[str], Optional[str]]
LogContextProvider = Callable[[], Optional[LogContext]]
# Per-run overrides of (framework level, user level, format) for the code running now; None means "none".
LogOverrides = tuple[Optional[int], Optional[int], Optional["LogFormat"]]
LogOverridesProvider = Callable[[], Optional[LogOverrides]]

SYSTEM_LOGGER_NAME = "flyte_celery"
USER_LOGGER_NAME = "flyte_celery.user"
DEFAULT_LOG_LEVEL = logging.WARNING
DEFAULT_USER_LOG_LEVEL = logging.INFO
CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FORMATS: tuple[LogFormat, ...] = ("console", "json")

_LEVELS_BY_NAME = {
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "notset": logging.NOTSET,
}
_CONTEXT_ATTRS = ("run_name", "action_name", "task_name")
_NO_CONTEXT: LogContext = (None, None, None)

_context_provider: LogContextProvider | None = None
_overrides_provider: LogOverridesProvider | None = None
# Set while one of our handlers writes a formatted line, on the thread doing it (see `writing_formatted_line`).
_writing = threading.local()

system_logger = logging.getLogger(SYSTEM_LOGGER_NAME)
user_logger = logging.getLogger(USER_LOGGER_NAME)


def parse_log_level(value: int | str | None) -> int | None:
    """Turns a log level given as a name ("debug", "INFO"), a number or a numeric string into an int.

    Args:
        value: The level; None passes through as None.

    Returns:
        The numeric level, or None when `value` is None.

    Raises:
        ValueError: If the value is neither a known level name nor a non-negative integer.
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        level = _LEVELS_BY_NAME.get(text.lower())
        if level is not None:
            return level
    names = ", ".join(name.upper() for name in _LEVELS_BY_NAME)
    raise ValueError(f"Invalid log level {value!r}: expected one of {names} (any case) or a non-negative integer")


def set_log_context_provider(fn: LogContextProvider | None) -> None:
    """Registers the function that tells which run, action and task the current code runs in.

    The provider is called each time a record is formatted, in the thread (and asyncio task) that logged it. It
    returns `(run_name, action_name, task_name)`, or None outside a task. Exceptions it raises are swallowed:
    logging never fails because of it.

    Args:
        fn: The provider, or None to remove it.
    """
    global _context_provider
    _context_provider = fn


def enable_per_run_settings(provider: LogOverridesProvider) -> None:
    """Let each run's log level and format apply to the records logged by its actions (used on workers, where
    actions of several runs share one process).

    The loggers then create records at every level and our handlers decide: the current run's level if it set
    one, else the level the handler was configured with.
    """
    global _overrides_provider
    _overrides_provider = provider
    for target in (system_logger, user_logger):
        for handler in target.handlers:
            if isinstance(handler, _OwnedHandler):
                handler.default_level = max(handler.default_level, target.level, handler.level)
                handler.setLevel(logging.NOTSET)
        target.setLevel(logging.DEBUG)


def writing_formatted_line() -> bool:
    """True while one of our handlers writes a line it formatted, on this thread.

    A stream that turns writes into records (Celery's redirect of a worker's stderr, the per-action capture) sees
    such a line as output of ours, not as something the task printed: it passes it on untouched.
    """
    return getattr(_writing, "active", False)


def shown_level(name: str) -> int:
    """The level from which records of our logger `name` (or a child of it) reach the log for the code running
    now: the run's own level where it set one, else the configured one. 0 for other loggers: their own levels
    decide."""
    if name != SYSTEM_LOGGER_NAME and not name.startswith(SYSTEM_LOGGER_NAME + "."):
        return logging.NOTSET
    is_user = name == USER_LOGGER_NAME or name.startswith(USER_LOGGER_NAME + ".")
    overrides = _overrides() if _overrides_provider is not None else None
    if overrides is not None:
        level = overrides[1] if is_user else overrides[0]
        if level is not None:
            return level
    target = user_logger if is_user else system_logger
    owned = [h.default_level for h in target.handlers if isinstance(h, _OwnedHandler)]
    return max([target.level, *owned])


def _overrides() -> LogOverrides | None:
    provider = _overrides_provider
    if provider is None:
        return None
    try:
        return provider()
    except Exception:
        return None


def _record_context(record: logging.LogRecord) -> LogContext:
    # Names passed through `extra=` win over the provider, so forwarded records keep their origin.
    run_name, action_name, task_name = (getattr(record, attr, None) for attr in _CONTEXT_ATTRS)
    if run_name or action_name or task_name:
        return run_name, action_name, task_name
    provider = _context_provider
    if provider is None:
        return _NO_CONTEXT
    try:
        context = provider()
    except Exception:
        return _NO_CONTEXT
    if not isinstance(context, tuple) or len(context) != len(_CONTEXT_ATTRS):
        return _NO_CONTEXT
    return context


class ContextFormatter(logging.Formatter):
    """Console formatter that prefixes each line with `[run][action]` inside a task.

    It never mutates the record, so several handlers can format the same record without stacking prefixes.
    """

    def __init__(self, fmt: str = CONSOLE_FORMAT, *, inner: logging.Formatter | None = None) -> None:
        super().__init__(fmt=fmt)
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        if self.inner is not None and writing_formatted_line():
            return record.getMessage()  # a line of ours redirected into this handler (a worker's stderr): as is
        text = self.inner.format(record) if self.inner is not None else super().format(record)
        run_name, action_name, _ = _record_context(record)
        prefix = "".join(f"[{name}]" for name in (run_name, action_name) if name)
        return f"{prefix} {text}" if prefix else text


class JSONFormatter(logging.Formatter):
    """Formatter writing one JSON object per record, with the run, action and task names inside a task."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "filename": record.filename,
            "lineno": record.lineno,
            "funcName": record.funcName,
        }
        for attr, value in zip(_CONTEXT_ATTRS, _record_context(record), strict=True):
            if value:
                data[attr] = value
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=str)


if TYPE_CHECKING:
    _StreamHandler = logging.StreamHandler[IO[str]]
else:
    _StreamHandler = logging.StreamHandler


class _OwnedHandler(_StreamHandler):
    """A stream handler installed by this module; its class is how reconfiguration finds and replaces it."""

    def __init__(self, stream: IO[str] | None) -> None:
        # Without an explicit stream, look sys.stderr up at each record: it may be replaced after import
        # (pytest capture, daemonised workers) and the old one closed.
        self._follow_stderr = stream is None
        self.default_level = logging.NOTSET
        super().__init__(sys.stderr if stream is None else stream)

    def emit(self, record: logging.LogRecord) -> None:
        outer = writing_formatted_line()
        _writing.active = True
        try:
            self._emit(record)
        finally:
            _writing.active = outer

    def _emit(self, record: logging.LogRecord) -> None:
        if self._follow_stderr:
            self.stream = sys.stderr
        overrides = _overrides() if _overrides_provider is not None else None
        if overrides is None:
            if record.levelno < self.default_level:
                return
            super().emit(record)
            return
        level, user_level, fmt = overrides
        threshold = user_level if record.name.startswith(user_logger.name) else level
        if record.levelno < (threshold if threshold is not None else self.default_level):
            return
        if fmt is None:
            super().emit(record)
            return
        try:
            self.stream.write(_FORMATTERS[fmt].format(record) + self.terminator)
            self.flush()
        except Exception:
            self.handleError(record)


_FORMATTERS: dict[str, logging.Formatter] = {"console": ContextFormatter(), "json": JSONFormatter()}


def _make_formatter(fmt: LogFormat) -> logging.Formatter:
    return JSONFormatter() if fmt == "json" else ContextFormatter()


def _install_handler(target: logging.Logger, level: int, fmt: LogFormat, stream: IO[str] | None) -> None:
    for handler in [h for h in target.handlers if isinstance(h, _OwnedHandler)]:
        target.removeHandler(handler)
    handler = _OwnedHandler(stream)
    handler.setFormatter(_make_formatter(fmt))
    target.addHandler(handler)
    target.setLevel(level)


def _wrap_root_formatters() -> None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _OwnedHandler) or isinstance(handler.formatter, ContextFormatter):
            continue
        handler.setFormatter(ContextFormatter(inner=handler.formatter or logging.Formatter()))


def configure_logging(
    level: int | str | None,
    fmt: LogFormat = "console",
    reset_root_logger: bool = False,
    *,
    user_level: int | str | None = None,
    stream: IO[str] | None = None,
) -> None:
    """Configures the framework and user loggers (and optionally the root logger) for this process.

    Calling it again replaces what an earlier call installed; handlers are never added twice.

    Args:
        level: Level of the framework logger (name or number); None means WARNING.
        fmt: "console" for text lines prefixed with `[run][action]` inside a task, "json" for one JSON object per
            line.
        reset_root_logger: True replaces the root logger's handlers with one of ours, at `level`, so third-party
            libraries log in the same format. False keeps the root handlers and wraps their formatters so their
            lines also carry the `[run][action]` prefix.
        user_level: Level of the user logger; None means INFO, or `level` when that is more verbose.
        stream: Where our handlers write; None means the current `sys.stderr`.

    Raises:
        ValueError: If a level or the format is not recognised.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"Invalid log format {fmt!r}: expected one of {', '.join(LOG_FORMATS)}")
    system_level = parse_log_level(level)
    if system_level is None:
        system_level = DEFAULT_LOG_LEVEL
    user_log_level = parse_log_level(user_level)
    if user_log_level is None:
        user_log_level = min(DEFAULT_USER_LOG_LEVEL, system_level)

    _install_handler(system_logger, system_level, fmt, stream)
    system_logger.propagate = False
    _install_handler(user_logger, user_log_level, fmt, stream)
    user_logger.propagate = False

    if reset_root_logger:
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        _install_handler(root, system_level, fmt, stream)
    else:
        _wrap_root_formatters()


def _install_default_handlers() -> None:
    if not any(isinstance(h, _OwnedHandler) for h in system_logger.handlers):
        _install_handler(system_logger, DEFAULT_LOG_LEVEL, "console", None)
    if not any(isinstance(h, _OwnedHandler) for h in user_logger.handlers):
        _install_handler(user_logger, DEFAULT_USER_LOG_LEVEL, "console", None)
    system_logger.propagate = False
    user_logger.propagate = False


_install_default_handlers()
