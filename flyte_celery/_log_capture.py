"""What an action prints and logs: routed into log records that name it, and kept in a bounded copy for later.

Many actions share one worker process (coroutines on one event loop, sync bodies on threads that get a copy of the
context), and so share one `sys.stdout`. The running action is therefore found through a `ContextVar` set by
`capturing(...)`, never through process state:

- `install_stdio_proxies()` puts a `StdioProxy` in front of `sys.stdout` and `sys.stderr`. Inside an action, what is
  written is cut into lines (a partial line waits, per action and stream, for its end or the action's) and each
  line becomes a record of `flyte_celery.user.stdout` (INFO) or `.stderr` (WARNING) carrying the run, action and
  task names, so it is formatted like every other line of the run (console or JSON). Outside any action, and for
  the lines our own handlers write, writes go to the wrapped stream as before.
- `install_record_capture()` wraps the log record factory: every record created inside an action at a level its
  run shows (see `shown_level`), from any logger, is also copied, formatted, into the action's `LineBuffer`.

A `LineBuffer` keeps the first and the last lines within a byte bound and says how much it cut in between. What
happens to it at the action's end is the caller's business (on the fleet: `_celery/action_logs.py`).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final, Literal, TextIO, cast

from flyte_celery._logging import USER_LOGGER_NAME, shown_level, writing_formatted_line

Stream = Literal["stdout", "stderr"]
MAX_LINE_CHARS: Final = 16 * 1024  # longer lines (and unterminated output past it) are cut into lines this long
CUT_MARKER_BYTES: Final = 96  # room kept in the bound for the line saying what was cut
STREAM_LEVELS: Final[dict[Stream, int]] = {"stdout": logging.INFO, "stderr": logging.WARNING}
STREAM_LOGGERS: Final[dict[Stream, logging.Logger]] = {
    stream: logging.getLogger(f"{USER_LOGGER_NAME}.{stream}") for stream in STREAM_LEVELS
}

_current: ContextVar[ActionLog | None] = ContextVar("flyte_celery_action_log", default=None)
# Set while a line of an action is turned into a record, so that record is neither captured twice nor re-captured
# when a handler writes it to a proxied stream.
_routing = threading.local()


def _size(line: str) -> int:
    """Bytes of `line` in UTF-8, plus its newline."""
    return (len(line) if line.isascii() else len(line.encode("utf-8", "replace"))) + 1


class LineBuffer:
    """The first and the last lines of a text, within `max_bytes` of UTF-8 (newlines included) in all.

    The first half of the bound keeps the head; once a line does not fit there, every later line goes to the tail,
    which drops its oldest lines to stay within the other half. A line marking the cut joins them in `lines()`.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= CUT_MARKER_BYTES:
            raise ValueError(f"max_bytes must be more than {CUT_MARKER_BYTES}, got {max_bytes}")
        self.max_bytes = max_bytes
        room = max_bytes - CUT_MARKER_BYTES
        self._head_room = room // 2
        self._tail_max = room - self._head_room
        self._head: list[str] = []
        self._head_open = True
        self._tail: deque[tuple[str, int]] = deque()
        self._tail_bytes = 0
        self.cut_lines = 0
        self.cut_bytes = 0
        self.appended = 0  # lines ever appended: tells a reader whether anything changed

    def append(self, line: str) -> None:
        self.appended += 1
        size = _size(line)
        if self._head_open:
            if size <= self._head_room:
                self._head.append(line)
                self._head_room -= size
                return
            self._head_open = False
        if size > self._tail_max:  # one line longer than the whole tail: keep its start
            kept = line.encode("utf-8", "replace")[: self._tail_max - 1].decode("utf-8", "ignore")
            self.cut_bytes += size - _size(kept)
            line, size = kept, _size(kept)
        self._tail.append((line, size))
        self._tail_bytes += size
        while self._tail_bytes > self._tail_max:
            _, dropped = self._tail.popleft()
            self._tail_bytes -= dropped
            self.cut_lines += 1
            self.cut_bytes += dropped

    def lines(self) -> list[str]:
        cut = []
        if self.cut_bytes:
            cut = [f"[... {self.cut_bytes} bytes ({self.cut_lines} whole lines) cut: the first and last are kept ...]"]
        return [*self._head, *cut, *(line for line, _ in self._tail)]

    def text(self) -> bytes:
        """The kept lines as UTF-8, one per line; at most `max_bytes`."""
        return "".join(f"{line}\n" for line in self.lines()).encode("utf-8", "replace")


class ActionLog:
    """One action's output: lines being assembled per stream, and the bounded copy of every line and record.

    Written from the event loop and from sync bodies' threads at once, hence the lock.
    """

    def __init__(self, run: str, action: str, task: str, max_bytes: int) -> None:
        self.run, self.action, self.task = run, action, task
        self.names = {"run_name": run, "action_name": action, "task_name": task}
        self.buffer = LineBuffer(max_bytes)
        self._partial: dict[Stream, str] = {}
        self._lock = threading.Lock()
        self.started = time.monotonic()

    def write(self, stream: Stream, text: str) -> None:
        """What the action wrote to `stream`: every line it completes becomes a record, the rest waits."""
        with self._lock:
            *lines, rest = (self._partial.pop(stream, "") + text).split("\n")
            if len(rest) > MAX_LINE_CHARS:
                cut = len(rest) - len(rest) % MAX_LINE_CHARS
                lines.append(rest[:cut])
                rest = rest[cut:]
            if rest:
                self._partial[stream] = rest
        for line in lines:
            self._line(stream, line.removesuffix("\r"))

    def add_record(self, record: logging.LogRecord) -> None:
        """A record logged inside the action: its text joins the copy (it goes to the log through its handlers)."""
        text = _record_text(record)
        with self._lock:
            for line in text.split("\n"):
                self.buffer.append(line)

    def close(self) -> None:
        """The action ended: its partial lines are complete now."""
        with self._lock:
            partial, self._partial = self._partial, {}
        for stream, rest in partial.items():
            self._line(stream, rest)

    def snapshot(self) -> tuple[int, bytes]:
        """(lines appended so far, the kept text)."""
        with self._lock:
            return self.buffer.appended, self.buffer.text()

    def _line(self, stream: Stream, line: str) -> None:
        for start in range(0, max(len(line), 1), MAX_LINE_CHARS):
            chunk = line[start : start + MAX_LINE_CHARS]
            with self._lock:
                self.buffer.append(chunk)
            self._emit(stream, chunk)

    def _emit(self, stream: Stream, line: str) -> None:
        logger, level = STREAM_LOGGERS[stream], STREAM_LEVELS[stream]
        if not logger.isEnabledFor(level):
            return
        outer = getattr(_routing, "active", False)
        _routing.active = True
        try:
            # No caller lookup: the caller would be this module, which tells a reader nothing.
            logger.handle(logger.makeRecord(logger.name, level, f"<{stream}>", 0, line, (), None, extra=self.names))
        finally:
            _routing.active = outer


def _record_text(record: logging.LogRecord) -> str:
    try:
        message = record.getMessage()
    except Exception:
        message = str(record.msg)
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
    text = f"{when},{int(record.msecs):03d} {record.levelname} {record.name}: {message}"
    if record.exc_info:
        text += "\n" + _TRACEBACKS.formatException(record.exc_info)
    return text


_TRACEBACKS = logging.Formatter()


@contextmanager
def capturing(log: ActionLog | None) -> Iterator[ActionLog | None]:
    """Within the block (and the tasks and sync bodies it starts), output is `log`'s; at its end, `log` is closed."""
    if log is None:
        yield None
        return
    token = _current.set(log)
    try:
        yield log
    finally:
        _current.reset(token)
        log.close()


class StdioProxy:
    """Stands in for `sys.stdout` or `sys.stderr`: inside an action, writes go to its `ActionLog`; elsewhere, and
    for lines our handlers write, to the wrapped stream (Celery's redirect, a terminal, a capture)."""

    def __init__(self, wrapped: TextIO, stream: Stream) -> None:
        self.wrapped = wrapped
        self.stream: Stream = stream

    def write(self, text: str) -> int:
        log = _current.get()
        if log is None or _passing_through():
            return self.wrapped.write(text)
        log.write(self.stream, text)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        # An action's partial line waits for its end; only the wrapped stream has something to flush.
        self.wrapped.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


def _passing_through() -> bool:
    return getattr(_routing, "active", False) or writing_formatted_line()


def install_stdio_proxies() -> None:
    """Put a `StdioProxy` in front of `sys.stdout` and `sys.stderr` (once; a stream replaced since gets one too)."""
    if not isinstance(sys.stdout, StdioProxy):
        sys.stdout = cast(TextIO, StdioProxy(sys.stdout, "stdout"))
    if not isinstance(sys.stderr, StdioProxy):
        sys.stderr = cast(TextIO, StdioProxy(sys.stderr, "stderr"))


def install_record_capture() -> None:
    """Copy every record created inside an action (at a level its run shows) into the action's log (once)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "captures_action_records", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        log = _current.get()
        if log is not None and not _passing_through() and record.levelno >= shown_level(record.name):
            log.add_record(record)
        return record

    factory.captures_action_records = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
