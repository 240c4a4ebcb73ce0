"""What the cluster recorded about runs and their actions, with the names of Flyte's `flyte.remote`: `RunDetails`,
`Action`, `ErrorInfo`, and `RunQuery` (the filters of `Run.listall`).

These are display records: an action's inputs and outputs are short reprs (text), never the values. A run's outputs
and error as values come from `Run.outputs()`, which reads the root's sealed result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Final

from flyte_celery._run import ActionPhase

DEFAULT_LIST_LIMIT: Final = 100


@dataclass(frozen=True)
class ErrorInfo:
    """Why an action failed.

    Attributes:
        error_type: The error's class, e.g. "RuntimeUserError".
        code: Its code: for a user error, the type of the exception the task raised.
        kind: Who is to blame: "user", "system" or "unknown".
        message: The message (cut short when long).
        traceback: The task's traceback (its last lines when long), or "".
    """

    error_type: str
    code: str
    kind: str
    message: str
    traceback: str = ""

    def __str__(self) -> str:
        return f"{self.error_type} (code={self.code}, kind={self.kind}): {self.message}"


class _Lifetime:
    """What an action and a run both have: a phase, and the times it started and ended."""

    phase: ActionPhase
    start_time: datetime | None
    end_time: datetime | None

    def done(self) -> bool:
        """True once it has reached a terminal phase."""
        return self.phase.is_terminal

    @property
    def runtime(self) -> timedelta | None:
        """How long it ran (so far, while it runs); None before it started."""
        if self.start_time is None:
            return None
        return (self.end_time or datetime.now(timezone.utc)) - self.start_time


@dataclass(frozen=True)
class Action(_Lifetime):
    """One action of a run as the cluster recorded it.

    Attributes:
        name: The action's name ("a0" for the root).
        run_name: Its run's name.
        task_name: The task it runs ("<env>.<task>").
        phase: Where it is: queued, running, or how it ended.
        parent: The action that called it (None for the root).
        group: The `flyte.group` it was called in, if any.
        inputs_repr: Its inputs as `name=value` reprs, cut short.
        outputs_repr: Its output's repr, cut short, once it succeeded.
        error_info: Why it failed, if it did.
        queued_time: When it was enqueued; `start_time`, `end_time`: when it started and ended (UTC).
    """

    name: str
    run_name: str
    task_name: str
    phase: ActionPhase
    parent: str | None = None
    group: str | None = None
    inputs_repr: str = ""
    outputs_repr: str | None = None
    error_info: ErrorInfo | None = None
    queued_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None


@dataclass(frozen=True)
class RunDetails(_Lifetime):
    """A run as the cluster recorded it.

    Attributes:
        name: The run's name.
        task_name: Its root task.
        phase: Its root action's phase.
        mode: "remote" or "hybrid".
        project, domain: As given to the run ("" when not given).
        start_time: When it was launched; `end_time`: when its root ended (UTC).
        error_info: Why it failed, if it did.
        labels, annotations: As given to the run.
        run_base_dir: Where its actions' metadata (reports, offloaded values) lives.
    """

    name: str
    task_name: str
    phase: ActionPhase
    mode: str
    project: str = ""
    domain: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None
    error_info: ErrorInfo | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    run_base_dir: str = ""


@dataclass(frozen=True)
class RunQuery:
    """Which runs `Run.listall` returns: all of these filters hold, newest first, at most `limit`."""

    in_phase: frozenset[ActionPhase] | None = None
    project: str | None = None
    domain: str | None = None
    name_prefix: str | None = None
    limit: int = DEFAULT_LIST_LIMIT

    @classmethod
    def build(
        cls,
        in_phase: Iterable[ActionPhase | str] | ActionPhase | str | None,
        project: str | None,
        domain: str | None,
        name_prefix: str | None,
        limit: int,
    ) -> RunQuery:
        """Check the filters.

        Raises:
            ValueError: Naming the filter that is wrong: an unknown phase, or a limit below 1.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a whole number of at least 1, got {limit!r}")
        phases = None
        if in_phase is not None:
            given = [in_phase] if isinstance(in_phase, str) else list(in_phase)
            phases = frozenset(parse_phase(phase) for phase in given) or None  # no phases: no filter, as in Flyte
        return cls(phases, project, domain, name_prefix, limit)

    @property
    def filtered(self) -> bool:
        """Whether any filter is set (else the newest `limit` runs are the answer)."""
        return bool(self.in_phase or self.project is not None or self.domain is not None or self.name_prefix)

    def admits(self, details: RunDetails) -> bool:
        return (
            (self.in_phase is None or details.phase in self.in_phase)
            and (self.project is None or details.project == self.project)
            and (self.domain is None or details.domain == self.domain)
            and (self.name_prefix is None or details.name.startswith(self.name_prefix))
        )


def parse_phase(phase: ActionPhase | str) -> ActionPhase:
    """`phase` as an `ActionPhase`, from its value ("running") or Flyte's name ("PHASE_RUNNING", "RUNNING").

    Raises:
        ValueError: If it names no phase; the message lists the phases.
    """
    if isinstance(phase, ActionPhase):
        return phase
    text = str(phase).strip().lower().removeprefix("phase_")
    try:
        return ActionPhase(text)
    except ValueError:
        known = ", ".join(p.value for p in ActionPhase)
        raise ValueError(f"unknown phase {phase!r}; phases are {known}") from None


def utc_time(seconds: float | None) -> datetime | None:
    """A unix time as an aware UTC datetime (None stays None)."""
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc)
