"""Adversarial review, in-process part: the shared `execute_action` cache flow (the same code runs on workers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import flyte_celery as flyte
from flyte_celery import _execution
from tests.integration.programs import review_tasks


@pytest.fixture
def local_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("FLYTE_CELERY_LOCAL_CACHE_PATH", str(tmp_path / "cache.db"))
    monkeypatch.delenv("FLYTE_CELERY_RUN_MODE", raising=False)
    flyte.init_from_config()
    try:
        yield
    finally:
        flyte.init()


def test_serialize_holds_for_an_owner_running_longer_than_its_reservation(
    local_cache: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Scaled down: a 0.3 s reservation and a 1 s body stand for the real 60 s reservation and a 2-minute task.
    monkeypatch.setattr(_execution, "SERIALIZED_RESERVATION_TTL_S", 0.3)
    review_tasks.serialized_runs.clear()
    run = flyte.with_runcontext(mode="local", name=f"review-serialize-{id(local_cache)}").run(
        review_tasks.two_serialized, 7
    )
    assert run.outputs().o0 == [70, 70]
    assert review_tasks.serialized_runs == [7], "the serialized body ran more than once"
