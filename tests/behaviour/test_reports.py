"""Reports and checkpoints in every mode: a report lands in its action's metadata directory, a task with
`report=True` is flushed when it ends, and a checkpoint carries state from one attempt to the next."""

from __future__ import annotations

from pathlib import Path

from tests.behaviour.conftest import Runner
from tests.behaviour.programs import reports


def _report_of(base: Path, action: str = "a0") -> str:
    return (base / action / "report.html").read_text()


def test_a_report_task_is_flushed_when_it_ends(runner: Runner, tmp_path: Path) -> None:
    run = runner(reports.reporting, 3, run_base_dir=str(tmp_path))
    assert run.outputs()[0] == "done"
    page = _report_of(tmp_path)
    assert "<h1>squares up to 3</h1>" in page
    assert "numbers" in page
    assert "<p>4</p>" in page
    assert run.reports() == [str(tmp_path / "a0" / "report.html")]  # the handle points a person at it


def test_flush_writes_the_report_while_the_task_runs(runner: Runner, tmp_path: Path) -> None:
    run = runner(reports.flushing, run_base_dir=str(tmp_path))
    assert "written before the end" in run.outputs()[0]
    assert "written before the end" in _report_of(tmp_path)


def test_each_action_owns_its_report(runner: Runner, tmp_path: Path) -> None:
    run = runner(reports.reporting_parent, run_base_dir=str(tmp_path))
    pages = {path.parent.name: path.read_text() for path in tmp_path.glob("*/report.html")}
    assert run.reports() == [str(tmp_path / name / "report.html") for name in pages]
    assert "a0" not in pages  # the parent logged but is not a report=True task, and never flushed
    (child,) = pages.values()
    assert "squares up to 2" in child
    assert "the parent" not in child


def test_a_checkpoint_carries_state_to_the_next_attempt(runner: Runner, tmp_path: Path) -> None:
    run = runner(reports.resumes, 3, raw_data_path=str(tmp_path))
    assert run.outputs()[0] == 3


def test_a_directory_checkpoint_from_a_sync_task(runner: Runner, tmp_path: Path) -> None:
    run = runner(reports.resumes_sync, 2, raw_data_path=str(tmp_path))
    assert run.outputs()[0] == ["attempt-0", "attempt-1"]
