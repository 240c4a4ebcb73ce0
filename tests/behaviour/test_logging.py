"""log_level, log_format and reset_root_logger of a run take effect in local mode too."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

import flyte_celery as flyte
from tests.behaviour.programs import logs


@pytest.fixture(autouse=True)
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = list(root.handlers)
    yield
    flyte.init(log_level=logging.WARNING, log_format="console")  # back to the default levels and format
    root.handlers[:] = saved


def test_json_lines_carry_the_run_and_action_names(capsys: pytest.CaptureFixture[str]) -> None:
    run = flyte.with_runcontext(mode="local", log_format="json", log_level=logging.DEBUG).run(logs.chatty, "hi")
    action = run.outputs().o0

    records = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    mine = [r for r in records if "says hi" in r["message"]]
    assert [r["message"] for r in mine] == ["debug says hi", "info says hi"]
    assert all(r["run_name"] == run.name and r["action_name"] == action for r in mine)


def test_log_level_filters_the_user_logger(capsys: pytest.CaptureFixture[str]) -> None:
    flyte.with_runcontext(mode="local", log_level=logging.WARNING, user_log_level=logging.WARNING).run(
        logs.chatty, "quiet"
    )

    assert "says quiet" not in capsys.readouterr().err


def test_reset_root_logger_replaces_the_root_handlers() -> None:
    stray = logging.StreamHandler()
    logging.getLogger().addHandler(stray)

    flyte.with_runcontext(mode="local", reset_root_logger=True).run(logs.chatty, "root")

    assert stray not in logging.getLogger().handlers
    assert logging.getLogger().handlers
