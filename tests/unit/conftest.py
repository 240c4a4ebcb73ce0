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


# Fixtures of real services: tests that use them belong under tests/integration, so tests/unit runs anywhere.
SERVICE_FIXTURES = frozenset({"redis_url", "redis_client", "worker_factory"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if used and "tests/unit/" in str(item.path).replace("\\", "/"):
            raise pytest.UsageError(
                f"{item.nodeid} uses {sorted(used)}: a test needing services goes in tests/integration"
            )
