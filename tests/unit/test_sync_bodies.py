"""Sync task bodies run on their own threads and can be interrupted."""

from __future__ import annotations

import asyncio
import threading

import pytest

from flyte_celery._sync_bodies import SyncBodyInterrupted, run_in_thread
from tests._services import wait_until


def test_a_body_returns_its_value_and_sees_the_callers_context() -> None:
    async def main() -> tuple[int, str]:
        future, _ = run_in_thread(lambda n: (n * 2, threading.current_thread().name), {"n": 21})
        return await future

    value, thread_name = asyncio.run(main())
    assert value == 42
    assert thread_name.startswith("flyte-celery-sync-")


def test_an_interrupted_busy_body_stops_with_sync_body_interrupted() -> None:
    started = threading.Event()
    stopped: list[BaseException] = []

    def busy() -> None:
        started.set()
        try:
            while True:
                pass
        except BaseException as exc:
            stopped.append(exc)
            raise

    async def main() -> None:
        future, interrupt = run_in_thread(busy, {})
        await asyncio.get_running_loop().run_in_executor(None, started.wait)
        interrupt()
        with pytest.raises(SyncBodyInterrupted):
            await future

    asyncio.run(main())
    assert len(stopped) == 1
    assert isinstance(stopped[0], SyncBodyInterrupted)


def test_interrupting_a_finished_body_does_nothing() -> None:
    async def main() -> int:
        future, interrupt = run_in_thread(lambda: 7, {})
        value = await future
        interrupt()
        return value

    assert asyncio.run(main()) == 7
    wait_until(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("flyte-celery-sync-")], 5, "threads to end"
    )
