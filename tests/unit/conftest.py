from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from flyte_celery._logging import system_logger


@pytest.fixture
def system_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """`caplog`, also fed by flyte-celery's system logger (which does not propagate to the root logger)."""
    system_logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger=system_logger.name):
            yield caplog
    finally:
        system_logger.removeHandler(caplog.handler)
