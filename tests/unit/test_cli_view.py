"""`flyte-celery get`'s summary, built from records without a cluster: counts per task, the failures it lists and
how it says whether it lists them all, and its bound on lines whatever the number of tasks and failures."""

from __future__ import annotations

from datetime import datetime, timezone

from flyte_celery._cli_view import FIRST_FAILURES, MAX_TASK_ROWS, run_summary
from flyte_celery._run import ActionPhase
from flyte_celery._run_details import Action, ErrorInfo, RunDetails

AT = datetime(2026, 1, 1, tzinfo=timezone.utc)
BOOM = ErrorInfo(
    "RuntimeUserError", "ValueError", "user", "boom", "Traceback (most recent call last):\nValueError: boom"
)


def _run(actions: list[Action], output: tuple[str, ...] = ()) -> list[str]:
    details = RunDetails("r1", "env.main", ActionPhase.FAILED, "remote", start_time=AT, end_time=AT)
    return run_summary(details, actions, outputs=None, error=BOOM, reports=[], failure_output=output)


def _action(i: int, task: str = "env.leaf", failed: bool = False) -> Action:
    phase = ActionPhase.FAILED if failed else ActionPhase.SUCCEEDED
    return Action(f"c{i}", "r1", task, phase, "a0", None, f"(i={i})", None, BOOM if failed else None, AT, AT, AT)


def test_a_single_failure_is_listed_without_hinting_at_more() -> None:
    root = Action("a0", "r1", "env.main", ActionPhase.FAILED, error_info=BOOM)
    lines = _run([root, _action(1), _action(2, failed=True)], output=("working on 2", "giving up"))
    assert "failures  1 action failed:" in lines
    assert "  c2 env.leaf (i=2): RuntimeUserError (code=ValueError, kind=user): boom" in lines
    assert not any("more (--full" in line for line in lines)
    shown = lines.index("    its last lines of output (flyte-celery logs r1 c2):")
    assert lines[shown + 1 : shown + 3] == ["    | working on 2", "    | giving up"]


def test_many_failures_and_tasks_stay_within_a_bound() -> None:
    root = Action("a0", "r1", "env.main", ActionPhase.FAILED, error_info=BOOM)
    children = [_action(i, task=f"env.task{i % 40}", failed=i % 2 == 0) for i in range(2000)]
    lines = _run([root, *children])
    assert "failures  1000 actions failed; the first ones:" in lines
    assert f"  ... {1000 - FIRST_FAILURES} more (--full lists them all)" in lines
    assert any(line.strip().startswith(f"({41 - MAX_TASK_ROWS + 1} more tasks)") for line in lines), lines
    assert len(lines) <= 40
