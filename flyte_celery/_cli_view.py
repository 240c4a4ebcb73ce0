"""What `flyte-celery runs`, `get` and `run --follow` print: plain lines cut to the terminal's width, so a summary
of any run fits a screen (actions are counted per task; only the first failures are shown), and the live view of a
followed run on a terminal (`live_view`, drawn with rich)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Final

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from flyte_celery._context import ROOT_ACTION_NAME
from flyte_celery._run import ActionPhase
from flyte_celery._run_details import Action, ErrorInfo, RunDetails

MAX_TASK_ROWS: Final = 12  # tasks listed in a summary; the rest are added up in one row
FIRST_FAILURES: Final = 3  # failed actions listed by `get` (all with --full)
TRACEBACK_TAIL: Final = 8  # traceback lines `get` shows of an error (all with --full)
OUTPUT_TAIL: Final = 5  # lines of the first failure's output `get` shows
LIVE_TRACEBACK_TAIL: Final = 3
LIVE_RESERVED_ROWS: Final = 10  # rows of the live view that are not the tree: header, failure, margins
PHASE_STYLES: Final = {
    ActionPhase.SUCCEEDED: "green",
    ActionPhase.FAILED: "red",
    ActionPhase.TIMED_OUT: "red",
    ActionPhase.ABORTED: "magenta",
    ActionPhase.RUNNING: "yellow",
    ActionPhase.QUEUED: "dim",
}
COUNT_COLUMNS: Final = ("total", "succeeded", "running", "queued", "failed", "aborted")


@dataclass
class TaskCounts:
    """How many actions of one task are in each state, and how long the finished ones took."""

    task: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_COLUMNS, 0))
    durations: list[float] = field(default_factory=list)

    def add(self, action: Action) -> None:
        self.counts["total"] += 1
        self.counts[state_of(action.phase)] += 1
        if action.done() and action.runtime is not None:
            self.durations.append(action.runtime.total_seconds())

    def cells(self) -> list[str]:
        p50 = duration(statistics.median(self.durations)) if self.durations else "-"
        longest = duration(max(self.durations)) if self.durations else "-"
        return [self.task, *(str(self.counts[name]) for name in COUNT_COLUMNS), p50, longest]


def state_of(phase: ActionPhase) -> str:
    """The count column an action in `phase` goes to."""
    if phase in (ActionPhase.SUCCEEDED, ActionPhase.RECOVERED):
        return "succeeded"
    if phase in (ActionPhase.FAILED, ActionPhase.TIMED_OUT):
        return "failed"
    if phase is ActionPhase.ABORTED:
        return "aborted"
    return "queued" if phase is ActionPhase.QUEUED else "running"


def count_by_task(actions: Iterable[Action]) -> list[TaskCounts]:
    """Counts per task, in the order the tasks first appear; beyond `MAX_TASK_ROWS` tasks the rest share a row."""
    by_task: dict[str, TaskCounts] = {}
    for action in actions:
        by_task.setdefault(action.task_name, TaskCounts(action.task_name)).add(action)
    rows = list(by_task.values())
    if len(rows) <= MAX_TASK_ROWS:
        return rows
    rest = TaskCounts(f"({len(rows) - MAX_TASK_ROWS + 1} more tasks)")
    for row in rows[MAX_TASK_ROWS - 1 :]:
        for name in COUNT_COLUMNS:
            rest.counts[name] += row.counts[name]
        rest.durations += row.durations
    return [*rows[: MAX_TASK_ROWS - 1], rest]


def totals(actions: Sequence[Action]) -> str:
    """ "1001 actions: 990 succeeded, 11 failed"."""
    counts = dict.fromkeys(COUNT_COLUMNS[1:], 0)
    for action in actions:
        counts[state_of(action.phase)] += 1
    parts = [f"{n} {name}" for name, n in counts.items() if n]
    return f"{len(actions)} action{'s' if len(actions) != 1 else ''}" + (": " + ", ".join(parts) if parts else "")


def failures(actions: Iterable[Action]) -> list[Action]:
    """The failed actions other than the root, in the order they ended."""
    failed = [a for a in actions if a.name != ROOT_ACTION_NAME and state_of(a.phase) == "failed"]
    return sorted(failed, key=lambda a: a.end_time or datetime.max.replace(tzinfo=timezone.utc))


def duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def timestamp(moment: datetime | None) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def runtime_text(details: RunDetails | Action) -> str:
    return duration(details.runtime.total_seconds()) if details.runtime is not None else "-"


def columns(rows: Sequence[Sequence[str]], right_from: int = 1) -> list[str]:
    """Rows as aligned text columns; columns from `right_from` on are right-aligned (numbers)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(w) if i >= right_from else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def fit(lines: Iterable[str], width: int) -> list[str]:
    """Each line cut to `width` characters (a summary never wraps, so its line count is what it says)."""
    return [line if len(line) <= width else line[: max(width - 3, 1)] + "..." for line in lines]


def error_lines(error: ErrorInfo, tail: int | None, indent: str = "  ") -> list[str]:
    """An error on one line, then its traceback (its last `tail` lines; None: all of them)."""
    lines = [str(error)]
    traceback = error.traceback.rstrip().splitlines()
    if tail is not None and len(traceback) > tail:
        lines.append(f"{indent}... ({len(traceback) - tail} earlier traceback lines; --full shows them)")
        traceback = traceback[-tail:]
    return lines + [indent + line for line in traceback]


def runs_table(runs: Sequence[RunDetails]) -> list[str]:
    """`flyte-celery runs`: one row per run."""
    header = ["NAME", "PHASE", "TASK", "PROJECT", "DOMAIN", "MODE", "STARTED", "DURATION"]
    rows = [
        [
            r.name,
            r.phase.value,
            r.task_name,
            r.project or "-",
            r.domain or "-",
            r.mode,
            timestamp(r.start_time),
            runtime_text(r),
        ]
        for r in runs
    ]
    return columns([header, *rows], right_from=len(header) - 1)


def run_summary(
    details: RunDetails,
    actions: Sequence[Action],
    *,
    outputs: str | None,
    error: ErrorInfo | None,
    reports: Sequence[str],
    full: bool = False,
    failure_output: Sequence[str] = (),
) -> list[str]:
    """`flyte-celery get`: the run, its inputs and outputs or error, its actions counted per task, the first
    failures, the last lines the first one printed (`failure_output`), and its report links. Without `full` it fits a
    screen whatever the number of actions."""
    root = next((a for a in actions if a.name == ROOT_ACTION_NAME), None)
    where = ", ".join(f"{k} {v}" for k, v in (("project", details.project), ("domain", details.domain)) if v)
    lines = [
        f"run       {details.name} ({details.mode}{', ' + where if where else ''})",
        f"task      {details.task_name}",
        f"phase     {details.phase.value}",
        f"started   {timestamp(details.start_time)}   ended {timestamp(details.end_time)}",
        f"took      {runtime_text(details)}",
        f"inputs    {root.inputs_repr if root and root.inputs_repr else '()'}",
    ]
    if outputs is not None:
        lines.append(f"outputs   {outputs}")
    tail = None if full else TRACEBACK_TAIL
    if error is not None:
        first, *rest = error_lines(error, tail, indent="          ")
        lines += [f"error     {first}", *rest]
    lines.append(f"actions   {totals(actions)}")
    table = [["task", *COUNT_COLUMNS, "p50", "max"], *(row.cells() for row in count_by_task(actions))]
    lines += ["  " + row for row in columns(table)]
    failed = failures(actions)
    if failed:
        shown = failed if full else failed[:FIRST_FAILURES]
        which = "; the first ones:" if len(failed) > len(shown) else ":"
        lines.append(f"failures  {len(failed)} action{'s' if len(failed) != 1 else ''} failed{which}")
        for i, action in enumerate(shown):
            info = action.error_info
            lines.append(f"  {action.name} {action.task_name} {action.inputs_repr}: {info or action.phase.value}")
            if info is not None and (full or i == 0):
                lines += ["    " + line for line in error_lines(info, tail)[1:]]
            if i == 0 and failure_output:
                lines.append(f"    its last lines of output (flyte-celery logs {details.name} {action.name}):")
                lines += ["    | " + line for line in failure_output]
        if len(failed) > len(shown):
            lines.append(f"  ... {len(failed) - len(shown)} more (--full lists them all)")
    if reports:
        lines.append(f"reports   {reports[0]}")
        shown_reports = reports if full else reports[:FIRST_FAILURES]
        lines += [f"          {url}" for url in shown_reports[1:]]
        if len(reports) > len(shown_reports):
            lines.append(f"          ... {len(reports) - len(shown_reports)} more (--full lists them all)")
    return lines


# --- the live view of `run --follow` on a terminal -------------------------------------------------------------


def live_view(details: RunDetails, actions: Sequence[Action], height: int) -> RenderableType:
    """The run's header, its tree of actions (or, when the tree would not fit in `height` rows, its actions
    counted per task), and its first failure."""
    header = Text.assemble(
        ("run ", "bold"), (details.name, "bold"), "  ", _phase_text(details.phase), f"  {runtime_text(details)}",
        f"  {details.task_name}  ", (totals(actions), "dim"),
    )  # fmt: skip
    body: RenderableType
    if len(actions) + LIVE_RESERVED_ROWS <= height:
        body = _tree(actions)
    else:
        body = Table(*(["task", *COUNT_COLUMNS, "p50", "max"]), box=None, header_style="bold")
        for row in count_by_task(actions):
            body.add_row(*row.cells())
    parts: list[RenderableType] = [header, body]
    failed = failures(actions)
    first = failed[0] if failed else next((a for a in actions if a.error_info is not None), None)
    if first is not None and first.error_info is not None:
        parts.append(Text(f"first failure: {first.name} {first.task_name} {first.inputs_repr}", style="red"))
        parts.append(Text("\n".join(error_lines(first.error_info, LIVE_TRACEBACK_TAIL))))
    return Group(*parts)


def _tree(actions: Sequence[Action]) -> Tree:
    names = {a.name for a in actions}
    children: dict[str | None, list[Action]] = {}
    for action in actions:
        parent = action.parent if action.parent in names else None
        if action.name == ROOT_ACTION_NAME:
            parent = None
        children.setdefault(parent, []).append(action)
    tree = Tree("actions", hide_root=True)
    stack = [(tree, a) for a in reversed(children.get(None, []))]
    while stack:
        node, action = stack.pop()
        label = Text.assemble(
            action.name, " ", (action.task_name, "bold"), " ", _phase_text(action.phase), f" {runtime_text(action)}"
        )
        branch = node.add(label)
        stack += [(branch, child) for child in reversed(children.get(action.name, []))]
    return tree


def _phase_text(phase: ActionPhase) -> Text:
    return Text(phase.value, style=PHASE_STYLES.get(phase, ""))
