"""Per-action capture: lines cut from what an action writes, kept per action even when actions share a process, a
bounded copy keeping head and tail, and records of any logger copied at the levels the run shows."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from typing import TextIO, cast

import pytest

from flyte_celery._log_capture import (
    CUT_MARKER_BYTES,
    MAX_LINE_CHARS,
    STREAM_LOGGERS,
    ActionLog,
    LineBuffer,
    StdioProxy,
    capturing,
    install_record_capture,
    install_stdio_proxies,
)
from flyte_celery._logging import ContextFormatter, _OwnedHandler, system_logger
from flyte_celery._sync_bodies import run_in_thread

MAX_BYTES = 4096


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def stdout_records() -> Iterator[Records]:
    """The records our stdout and stderr loggers emit (they propagate only to the non-propagating user logger)."""
    handler = Records()
    for logger in STREAM_LOGGERS.values():
        logger.addHandler(handler)
    yield handler
    for logger in STREAM_LOGGERS.values():
        logger.removeHandler(handler)


@pytest.fixture
def record_capture() -> Iterator[None]:
    factory = logging.getLogRecordFactory()
    install_record_capture()
    yield
    logging.setLogRecordFactory(factory)


def new_log(action: str = "a0") -> ActionLog:
    return ActionLog("r1", action, "env.task", MAX_BYTES)


def kept(log: ActionLog) -> list[str]:
    return log.buffer.lines()


def test_writes_become_lines_and_a_partial_line_waits_for_its_end(stdout_records: Records) -> None:
    log = new_log()
    log.write("stdout", "one\ntw")
    log.write("stdout", "o\r\nthr")
    assert kept(log) == ["one", "two"]
    log.write("stderr", "err")  # streams assemble their lines apart
    log.write("stdout", "ee\n")
    log.close()
    assert kept(log) == ["one", "two", "three", "err"]
    assert [(r.name, r.levelno, r.getMessage()) for r in stdout_records.records] == [
        ("flyte_celery.user.stdout", logging.INFO, "one"),
        ("flyte_celery.user.stdout", logging.INFO, "two"),
        ("flyte_celery.user.stdout", logging.INFO, "three"),
        ("flyte_celery.user.stderr", logging.WARNING, "err"),
    ]
    record = stdout_records.records[0]
    assert (record.run_name, record.action_name, record.task_name) == ("r1", "a0", "env.task")  # type: ignore[attr-defined]


def test_overlong_and_unterminated_output_is_cut_into_lines() -> None:
    log = ActionLog("r1", "a0", "t", 1024 * 1024)
    log.write("stdout", "x" * (2 * MAX_LINE_CHARS + 5))  # no newline: all but the rest goes out now
    assert [len(line) for line in kept(log)] == [MAX_LINE_CHARS, MAX_LINE_CHARS]
    log.write("stdout", "y" * (MAX_LINE_CHARS + 1) + "\n")
    log.close()
    assert [len(line) for line in kept(log)] == [MAX_LINE_CHARS] * 3 + [6]


def test_outside_an_action_writes_go_to_the_wrapped_stream() -> None:
    wrapped = io.StringIO()
    proxy = StdioProxy(wrapped, "stdout")
    print("plain", file=cast(TextIO, proxy))
    log = new_log()
    with capturing(log):
        print("inside", file=cast(TextIO, proxy))
    assert wrapped.getvalue() == "plain\n"
    assert kept(log) == ["inside"]
    assert proxy.getvalue() == "plain\n"  # anything else is the wrapped stream's


def test_actions_sharing_a_process_keep_their_own_partial_lines() -> None:
    wrapped = io.StringIO()
    proxy = cast(TextIO, StdioProxy(wrapped, "stdout"))
    logs = {name: new_log(name) for name in ("a", "b")}

    async def action(name: str, others_started: asyncio.Event, mine_started: asyncio.Event) -> None:
        with capturing(logs[name]):
            for i in range(3):
                print(f"{name}{i}-start", end="", file=proxy)
                mine_started.set()
                await others_started.wait()  # the other action writes while this line is half done
                print(f" {name}{i}-end", file=proxy)
                await asyncio.sleep(0)

    async def main() -> None:
        a_started, b_started = asyncio.Event(), asyncio.Event()
        await asyncio.gather(action("a", b_started, a_started), action("b", a_started, b_started))

    asyncio.run(main())
    assert kept(logs["a"]) == [f"a{i}-start a{i}-end" for i in range(3)]
    assert kept(logs["b"]) == [f"b{i}-start b{i}-end" for i in range(3)]
    assert wrapped.getvalue() == ""


def test_a_sync_body_writes_into_the_action_that_started_it() -> None:
    proxy = cast(TextIO, StdioProxy(io.StringIO(), "stdout"))
    log = new_log()

    async def main() -> None:
        with capturing(log):
            future, _ = run_in_thread(lambda: print("from the thread", file=proxy), {})
            await future

    asyncio.run(main())
    assert kept(log) == ["from the thread"]


def test_a_handler_writing_to_a_proxied_stream_inside_an_action_does_not_loop() -> None:
    wrapped = io.StringIO()
    proxy = StdioProxy(wrapped, "stdout")
    handler = logging.StreamHandler(cast(TextIO, proxy))
    handler.setFormatter(logging.Formatter("H %(message)s"))
    STREAM_LOGGERS["stdout"].addHandler(handler)
    log = new_log()
    try:
        with capturing(log):
            print("once", file=cast(TextIO, proxy))
    finally:
        STREAM_LOGGERS["stdout"].removeHandler(handler)
    assert wrapped.getvalue() == "H once\n"
    assert kept(log) == ["once"]


def test_the_buffer_keeps_head_and_tail_within_the_bound() -> None:
    buffer = LineBuffer(400)
    for i in range(1000):
        buffer.append(f"line {i:04d}")
    lines = buffer.lines()
    assert len(buffer.text()) <= 400
    assert lines[0] == "line 0000"
    assert lines[-1] == "line 0999"
    marker = [i for i, line in enumerate(lines) if line.startswith("[... ")]
    assert len(marker) == 1
    head, tail = lines[: marker[0]], lines[marker[0] + 1 :]
    assert head == [f"line {i:04d}" for i in range(len(head))]
    assert tail == [f"line {i:04d}" for i in range(1000 - len(tail), 1000)]
    cut = 1000 - len(head) - len(tail)
    assert f"{cut * len('line 0000') + cut} bytes ({cut} whole lines)" in lines[marker[0]]
    assert buffer.appended == 1000


def test_a_line_longer_than_the_tail_keeps_its_start_and_utf8_stays_valid() -> None:
    buffer = LineBuffer(300)
    buffer.append("é" * 1000)  # 2 bytes each
    text = buffer.text()
    assert len(text) <= 300
    lines = text.decode("utf-8").splitlines()  # raises if a character was cut in half
    assert lines[-1].startswith("éé")
    assert "cut" in lines[0]


def test_a_small_buffer_keeps_everything_without_a_marker() -> None:
    buffer = LineBuffer(MAX_BYTES)
    for line in ("a", "b", "c"):
        buffer.append(line)
    assert buffer.lines() == ["a", "b", "c"]
    assert buffer.text() == b"a\nb\nc\n"


def test_a_bound_below_the_marker_is_refused() -> None:
    with pytest.raises(ValueError, match=str(CUT_MARKER_BYTES)):
        LineBuffer(CUT_MARKER_BYTES)


def test_records_of_any_logger_inside_an_action_are_copied_at_shown_levels(record_capture: None) -> None:
    library = logging.getLogger("tests.log_capture.library")
    library.setLevel(logging.INFO)
    library.propagate = False
    log = new_log()
    owned = [h for h in system_logger.handlers if isinstance(h, _OwnedHandler)]
    saved = (system_logger.level, [h.default_level for h in owned])
    system_logger.setLevel(logging.DEBUG)  # as on a worker: records are created at every level, the handler
    for handler in owned:  # shows them from WARNING
        handler.default_level = logging.WARNING
    try:
        library.info("outside")
        with capturing(log):
            library.info("library %s", "inside")
            system_logger.debug("framework detail")
            system_logger.warning("framework warning")
            try:
                raise KeyError("boom")
            except KeyError:
                library.exception("failed")
    finally:
        system_logger.setLevel(saved[0])
        for handler, level in zip(owned, saved[1], strict=True):
            handler.default_level = level
        library.propagate = True
    text = "\n".join(kept(log))
    assert "INFO tests.log_capture.library: library inside" in text
    assert "WARNING flyte_celery: framework warning" in text
    assert "framework detail" not in text
    assert "outside" not in text
    assert "KeyError: 'boom'" in text
    assert kept(log)[0][:4].isdigit()  # a timestamp first


def test_a_print_line_is_copied_once_not_again_as_a_record(record_capture: None, stdout_records: Records) -> None:
    log = new_log()
    with capturing(log):
        log.write("stdout", "printed\n")
    assert kept(log) == ["printed"]
    assert len(stdout_records.records) == 1


def test_our_line_redirected_into_a_foreign_handler_is_not_formatted_twice() -> None:
    # A worker's stderr is Celery's redirect: what our handler writes comes back as a record of another logger,
    # whose handler's formatter we wrapped. That line must come out as we formatted it.
    foreign_stream = io.StringIO()
    foreign = logging.StreamHandler(foreign_stream)
    foreign.setFormatter(ContextFormatter(inner=logging.Formatter("[CELERY] %(message)s")))
    redirected = logging.getLogger("tests.log_capture.redirected")
    redirected.addHandler(foreign)
    redirected.propagate = False

    class Redirect(io.StringIO):
        def write(self, text: str) -> int:
            redirected.warning(text.rstrip("\n"))
            return len(text)

    ours = _OwnedHandler(Redirect())
    ours.setFormatter(ContextFormatter())
    try:
        ours.handle(logging.LogRecord("flyte_celery.user", logging.INFO, __file__, 1, "hello", (), None))
        redirected.warning("their own")
    finally:
        redirected.removeHandler(foreign)
        redirected.propagate = True
    first, second = foreign_stream.getvalue().splitlines()
    assert first.endswith("flyte_celery.user: hello")
    assert "[CELERY]" not in first
    assert second == "[CELERY] their own"


def test_installing_the_proxies_twice_wraps_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    install_stdio_proxies()
    install_stdio_proxies()
    assert isinstance(sys.stdout, StdioProxy)
    assert sys.stdout.wrapped is out
    assert isinstance(sys.stderr, StdioProxy)
    assert sys.stderr.wrapped is err
