"""Programs for the report and checkpoint tests: reports written while a task runs or flushed at its end, and
checkpoints that carry state from one attempt to the next."""

from __future__ import annotations

import asyncio

import flyte_celery as flyte
import flyte_celery.report as report
from flyte_celery.errors import RuntimeUserError

env = flyte.TaskEnvironment("reports")


@env.task(report=True)
async def reporting(n: int) -> str:
    report.log(f"<h1>squares up to {n}</h1>")
    tab = report.get_tab("numbers")
    for i in range(n):
        tab.log(f"<p>{i * i}</p>")
    return "done"


@env.task
async def flushing() -> str:
    await report.replace.aio("<p>written before the end</p>", do_flush=True)
    return report.current_report().get_final_report()


@env.task
async def reporting_parent() -> str:
    """A parent whose child reports: each action owns its own report."""
    await report.log.aio("<p>the parent</p>")
    await reporting(2)
    return "parent"


@env.task(retries=2)
async def resumes(total: int) -> int:
    """Counts to `total`, one step per attempt, failing after each step until done: the count lives only in the
    checkpoint, so only a resumed attempt can finish."""
    context = flyte.ctx()
    assert context is not None
    saved = await context.checkpoint.load.aio()
    count = int(saved.read_text()) if saved is not None else 0
    count += 1
    await context.checkpoint.save.aio(str(count).encode())
    if count < total:
        raise RuntimeUserError("NotYet", f"attempt {context.attempt_number} counted to {count}")
    return count


@env.task(retries=1)
def resumes_sync(total: int) -> list[str]:
    """The same with a directory checkpoint, from a sync task."""
    import pathlib
    import tempfile

    context = flyte.ctx()
    assert context is not None
    saved = context.checkpoint.load_sync()
    seen = sorted(p.name for p in saved.iterdir()) if saved is not None else []
    with tempfile.TemporaryDirectory() as scratch:
        state = pathlib.Path(scratch)
        for name in [*seen, f"attempt-{context.attempt_number}"]:
            (state / name).write_text(name)
        context.checkpoint.save_sync(state)
    if len(seen) + 1 < total:
        raise ValueError("not yet")
    return [*seen, f"attempt-{context.attempt_number}"]


async def _unused() -> None:
    await asyncio.sleep(0)
