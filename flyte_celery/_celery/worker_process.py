"""One per worker pool process: its event loop thread, the actions it hosts, its leases and loop watch.

Created when the pool process starts (`worker_process_init`) or on first use, and again in a forked child; at the
process's shutdown it hands its actions to the other workers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from typing import Any

from celery import Celery

from flyte_celery._celery.action_host import ActionHost
from flyte_celery._celery.envelope import Envelope
from flyte_celery._celery.hosting import HostedActions, IdleSignallingSelector, Slot
from flyte_celery._celery.leases import LeaseKeeper
from flyte_celery._celery.loop_watch import LoopWatch
from flyte_celery._celery.outcome import Outcome
from flyte_celery._celery.records import Start
from flyte_celery._celery.runtime import Runtime
from flyte_celery._celery.start_checks import StartChecks
from flyte_celery._config_model import Settings
from flyte_celery._context import current_frame
from flyte_celery._environ import install_context_environ
from flyte_celery._log_capture import install_record_capture, install_stdio_proxies
from flyte_celery._logging import LogOverrides, configure_logging, enable_per_run_settings
from flyte_celery._signing import Authenticated


class WorkerProcess:
    """An event loop on its own thread, with an `ActionHost` on it, and what keeps the hosted actions alive."""

    def __init__(self, settings: Settings, app: Celery) -> None:
        self.pid = os.getpid()
        configure_logging(settings.log.level, settings.log.format, settings.log.reset_root_logger)
        install_context_environ()
        enable_per_run_settings(_run_log_overrides)
        install_stdio_proxies()  # in front of Celery's redirect: an action's prints become its log records
        install_record_capture()
        self.hosted = HostedActions(settings.worker.max_hosted_actions)
        self.loop = asyncio.SelectorEventLoop(IdleSignallingSelector(self.hosted.on_loop_idle))
        self.thread = threading.Thread(target=self.loop.run_forever, name="flyte-celery-loop", daemon=True)
        self.thread.start()
        self.watch = LoopWatch(self.loop, self.thread, self.hosted)
        self.runtime = Runtime(settings, app)
        self.call(self.runtime.start())
        self.start_checks = StartChecks(settings.redis_url_resolved(), self.runtime.keys)
        self.host = ActionHost(self.runtime, self.loop)
        self.leases = self.host.leases = LeaseKeeper(settings, self.runtime.keys, app)

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def start(
        self, envelope: Envelope, inputs: Authenticated, hostname: str | None, start: Start
    ) -> tuple[Slot, concurrent.futures.Future[Outcome]]:
        """Hand an action that passed its start checks to the loop; its slot says when the body may return."""
        slot = self.hosted.admit()
        future = asyncio.run_coroutine_threadsafe(self.host.run(envelope, inputs, slot, start, hostname), self.loop)
        return slot, future

    def hand_off(self) -> None:
        self.leases.hand_off()
        self.loop.call_soon_threadsafe(self.host.hand_off)

    def stop(self) -> None:
        self.watch.stop()
        self.hand_off()
        try:
            self.call(self.runtime.close())
            self.host.end_events.close()
            self.start_checks.close()
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)


_process: WorkerProcess | None = None
_process_lock = threading.Lock()


def hand_off() -> None:
    """On pool-process shutdown: let other workers take over the actions hosted here."""
    if _process is not None and _process.pid == os.getpid():
        _process.hand_off()


def worker_process(settings: Settings, app: Celery) -> WorkerProcess:
    """This process's `WorkerProcess`, created on first use (and again in a forked child)."""
    global _process
    with _process_lock:
        if _process is None or _process.pid != os.getpid():
            _process = WorkerProcess(settings, app)
        return _process


def _run_log_overrides() -> LogOverrides | None:
    frame = current_frame()
    if frame is None:
        return None
    run = frame.run
    if run.log_level is None and run.user_log_level is None and run.log_format is None:
        return None
    return run.log_level, run.user_log_level, run.log_format
