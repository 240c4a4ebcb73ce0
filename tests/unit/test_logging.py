from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from flyte_celery import _logging
from flyte_celery._logging import (
    ContextFormatter,
    configure_logging,
    parse_log_level,
    set_log_context_provider,
    system_logger,
    user_logger,
)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Puts our loggers, the root logger (pytest's handlers included) and the context provider back as they were."""
    saved = {
        lg: (list(lg.handlers), lg.level, lg.propagate) for lg in (system_logger, user_logger, logging.getLogger())
    }
    formatters = {h: h.formatter for h in logging.getLogger().handlers}
    provider = _logging._context_provider
    yield
    for lg, (handlers, level, propagate) in saved.items():
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate
    for handler, formatter in formatters.items():
        handler.setFormatter(formatter)
    set_log_context_provider(provider)


def in_task() -> tuple[str | None, str | None, str | None]:
    return ("r1", "a0", "env.main")


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("debug", 10), ("INFO", 20), (" Warning ", 30), ("warn", 30), ("15", 15), (40, 40), (None, None)],
)
def test_parse_log_level(value: int | str | None, expected: int | None) -> None:
    assert parse_log_level(value) == expected


@pytest.mark.parametrize("value", ["loud", "", "-5", -5, True])
def test_parse_log_level_rejects_bad_values_naming_them(value: object) -> None:
    with pytest.raises(ValueError, match="Invalid log level") as info:
        parse_log_level(value)  # type: ignore[arg-type]
    assert repr(value) in str(info.value)


def test_loggers_do_not_propagate_and_have_default_levels() -> None:
    assert system_logger.name == "flyte_celery"
    assert user_logger.name == "flyte_celery.user"
    assert not system_logger.propagate
    assert not user_logger.propagate
    configure_logging(None, stream=io.StringIO())
    assert system_logger.level == logging.WARNING
    assert user_logger.level == logging.INFO


def test_configure_is_idempotent() -> None:
    stream = io.StringIO()
    for _ in range(3):
        configure_logging("info", stream=stream)
    system_logger.info("once")
    user_logger.info("once too")
    assert len(lines(stream)) == 2
    assert sum(isinstance(h, _logging._OwnedHandler) for h in system_logger.handlers) == 1
    assert sum(isinstance(h, _logging._OwnedHandler) for h in user_logger.handlers) == 1


@pytest.mark.parametrize(
    ("level", "user_level", "expected"),
    [
        ("debug", None, (logging.DEBUG, logging.DEBUG)),
        ("error", None, (logging.ERROR, logging.INFO)),
        (logging.WARNING, "warning", (logging.WARNING, logging.WARNING)),
    ],
)
def test_levels(level: str | int, user_level: str | None, expected: tuple[int, int]) -> None:
    configure_logging(level, user_level=user_level, stream=io.StringIO())
    assert (system_logger.level, user_logger.level) == expected


def test_console_prefixes_run_and_action_inside_a_task_only() -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    user_logger.info("outside")
    set_log_context_provider(in_task)
    user_logger.info("inside")
    system_logger.warning("framework")
    outside, inside, framework = lines(stream)
    assert "outside" in outside
    assert not outside.startswith("[")
    assert inside.startswith("[r1][a0] ")
    assert inside.endswith("inside")
    assert "INFO" in inside
    assert framework.startswith("[r1][a0] ")


def test_json_has_the_fields_and_context() -> None:
    stream = io.StringIO()
    configure_logging("debug", fmt="json", stream=stream)
    user_logger.info("plain %s", "text")
    set_log_context_provider(in_task)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        system_logger.exception("failed")
    plain, failed = (json.loads(line) for line in lines(stream))
    assert plain["message"] == "plain text"
    assert plain["level"] == "INFO"
    assert plain["logger"] == "flyte_celery.user"
    assert plain["filename"] == "test_logging.py"
    assert plain["funcName"] == "test_json_has_the_fields_and_context"
    assert isinstance(plain["lineno"], int)
    assert "timestamp" in plain
    assert "run_name" not in plain
    assert "exc_info" not in plain
    assert (failed["run_name"], failed["action_name"], failed["task_name"]) == ("r1", "a0", "env.main")
    assert "RuntimeError: boom" in failed["exc_info"]


def test_a_failing_or_malformed_provider_never_breaks_logging() -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream)

    def broken() -> tuple[str | None, str | None, str | None]:
        raise LookupError("no context")

    set_log_context_provider(broken)
    user_logger.info("still logged")
    set_log_context_provider(lambda: ("only", "two"))  # type: ignore[arg-type,return-value]
    user_logger.info("again")
    assert [line.split(": ", 1)[1] for line in lines(stream)] == ["still logged", "again"]


def test_reset_root_logger_replaces_root_handlers() -> None:
    root = logging.getLogger()
    foreign = logging.StreamHandler(io.StringIO())
    root.addHandler(foreign)
    stream = io.StringIO()
    configure_logging("info", reset_root_logger=True, stream=stream)
    configure_logging("info", reset_root_logger=True, stream=stream)
    assert foreign not in root.handlers
    assert len(root.handlers) == 1
    assert root.level == logging.INFO
    set_log_context_provider(in_task)
    logging.getLogger("some.library").info("third party")
    assert lines(stream)[-1].startswith("[r1][a0] ")
    assert lines(stream)[-1].endswith("third party")


def test_keeping_root_handlers_wraps_their_formatters_once() -> None:
    root = logging.getLogger()
    root_stream = io.StringIO()
    foreign = logging.StreamHandler(root_stream)
    foreign.setFormatter(logging.Formatter("LIB %(message)s"))
    root.addHandler(foreign)
    root.setLevel(logging.INFO)
    configure_logging("info", stream=io.StringIO())
    configure_logging("info", stream=io.StringIO())
    assert foreign in root.handlers
    assert isinstance(foreign.formatter, ContextFormatter)
    assert not isinstance(foreign.formatter.inner, ContextFormatter)
    logging.getLogger("some.library").info("outside")
    set_log_context_provider(in_task)
    logging.getLogger("some.library").info("inside")
    assert lines(root_stream) == ["LIB outside", "[r1][a0] LIB inside"]


def test_default_handler_writes_to_the_current_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(None)
    system_logger.warning("to stderr")
    assert "to stderr" in capsys.readouterr().err


def test_bad_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="'xml'"):
        configure_logging("info", fmt="xml")  # type: ignore[arg-type]
