"""Actions' printed and logged lines on the fleet: kept in Redis under `{<run>}:logs:<action>`, read back as text.

A worker process captures each action it hosts (`_log_capture`). The kept lines (at most `log.capture_max_bytes`,
first and last ones) go to Redis in the pipeline that records the action's outcome, so a short action costs no
round trip of its own and its lines are there by the time its outcome is. An action that runs longer than
`FLUSH_INTERVAL_S` also has its lines rewritten every `FLUSH_INTERVAL_S` while it runs, all such actions of the
process in one pipeline. An action that printed and logged nothing writes nothing.

The key holds plain UTF-8 text, one line per line: display data, read without unpickling anything. Like every key
of a run, it is written only while the run's record exists, and lives `retention.results_s`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

from flyte_celery._celery.keys import Keys
from flyte_celery._celery.scripts import Pipeline, Scripts
from flyte_celery._config_model import Settings
from flyte_celery._context import ROOT_ACTION_NAME
from flyte_celery._init import current_settings
from flyte_celery._log_capture import ActionLog, capturing
from flyte_celery._logging import system_logger
from flyte_celery._redis_connect import sync_client
from flyte_celery._throttle import LogThrottle
from flyte_celery.errors import ActionNotFoundError, RunNotFoundError

if TYPE_CHECKING:
    from flyte_celery._celery.runtime import Runtime

FLUSH_INTERVAL_S: Final = 2.0  # a running action's lines are rewritten this often, once it has run this long

# KEYS: run record, logs.  ARGV: text, ttl.  Writes nothing for a run whose record is gone.
SAVE_LOGS: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return 1
"""


def queue_save(scripts: Scripts, pipe: Pipeline, keys: Keys, run: str, action: str, text: bytes) -> None:
    """Queue the write of `run`/`action`'s lines into `pipe` (one command; replies 1, or 0 for a lost run)."""
    scripts.queue(pipe, "logs", [keys.run(run), keys.logs(run, action)], [text, keys.result_ttl_s])


class ActionLogs:
    """The capture of the actions one worker process hosts, on its event loop."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.max_bytes = runtime.settings.log.capture_max_bytes
        self._open: dict[ActionLog, int] = {}  # running action -> lines it had when last written
        self._flusher: asyncio.Task[None] | None = None
        self._writing: asyncio.Future[None] | None = None
        self._writing_logs: set[ActionLog] = set()
        self._failures = LogThrottle()

    @contextmanager
    def capturing(self, run: str, action: str, task: str) -> Iterator[ActionLog | None]:
        """Within the block, what the action prints and logs is captured (nothing when capture is off)."""
        if not self.max_bytes:
            yield None
            return
        log = ActionLog(run, action, task, self.max_bytes)
        self._open[log] = 0
        if self._flusher is None or self._flusher.done():
            # Started before the action's capture is current, so the flusher's own lines are nobody's.
            self._flusher = asyncio.ensure_future(self._keep_flushing())
        try:
            with capturing(log):
                yield log
        finally:
            self._open.pop(log, None)

    async def final_text(self, log: ActionLog | None) -> bytes | None:
        """The lines to record with the ended action's outcome; None if it printed and logged nothing.

        A periodic write of this action still in flight is awaited first, so it cannot land after the final one.
        """
        if log is None:
            return None
        writing = self._writing
        if writing is not None and not writing.done() and log in self._writing_logs:
            await asyncio.wait([writing])
        appended, text = log.snapshot()
        return text if appended else None

    async def _keep_flushing(self) -> None:
        while self._open:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            now = time.monotonic()
            due = []
            for log, written in list(self._open.items()):
                if now - log.started >= FLUSH_INTERVAL_S:
                    appended, text = log.snapshot()
                    if appended != written:
                        due.append((log, appended, text))
            if due:
                self._writing_logs = {log for log, _, _ in due}
                self._writing = asyncio.ensure_future(self._write(due))
                await asyncio.wait([self._writing])
                for log, appended, _ in due:
                    if log in self._open:
                        self._open[log] = appended

    async def _write(self, due: list[tuple[ActionLog, int, bytes]]) -> None:
        runtime = self.runtime

        def build(pipe: Any) -> None:
            for log, _, text in due:
                queue_save(runtime.scripts, pipe, runtime.keys, log.run, log.action, text)

        try:
            await runtime.scripts.execute(build)
        except Exception as exc:  # the next round, or the action's end, writes them again
            held = self._failures.ready()
            if held is not None:
                system_logger.warning("could not write the lines of %d running action(s): %s", len(due), exc)


def read_action_logs(
    run: str, action: str = ROOT_ACTION_NAME, *, tail: int | None = None, settings: Settings | None = None
) -> list[str]:
    """The lines an action of a run on the fleet printed and logged, as kept (the first and last ones, with a line
    marking the cut between them when it printed more than `log.capture_max_bytes`).

    A running action's lines are there once it has run `FLUSH_INTERVAL_S` seconds, and all of them once it ends.

    Args:
        run: The run's name.
        action: The action's name; the root action by default.
        tail: Only the last `tail` lines.
        settings: Where the cluster is; the current settings by default.

    Returns:
        The lines, without their newlines; empty for an action that printed and logged nothing (so far).

    Raises:
        RunNotFoundError: If Redis holds no record of the run (never started, expired, or another Redis).
        ActionNotFoundError: If the run has no such action, finished, running or queued.
        ValueError: If a name is empty or `tail` is negative.
    """
    if not run or not action:
        raise ValueError(f"a run and an action name are needed, got run={run!r}, action={action!r}")
    if tail is not None and tail < 0:
        raise ValueError(f"tail must be 0 or more, got {tail}")
    settings = settings or current_settings()
    keys = Keys(settings.redis.key_prefix, settings.retention)
    client = sync_client(settings.redis_url_resolved())
    try:
        with client.pipeline(transaction=False) as pipe:
            pipe.exists(keys.run(run))
            pipe.get(keys.logs(run, action))
            pipe.exists(keys.result(run, action), keys.message(run, action), keys.enqueued(run, action))
            run_exists, text, action_known = pipe.execute()
    finally:
        client.close()
    if not run_exists:
        raise RunNotFoundError(run, f"no run named {run!r} in Redis (never started, expired, or another redis.url)")
    if text is None and not action_known:
        raise ActionNotFoundError(f"run {run!r} has no action {action!r} (finished, running or queued)")
    lines = text.decode("utf-8", "replace").splitlines() if text else []
    if tail is not None:
        return lines[len(lines) - tail :] if tail else []
    return lines
