"""The read side of the run context: `ActionID`, `TaskContext` and `ctx()`.

A `ContextVar` holds a frozen `Frame` (the task context plus what the runtime needs next to it). Nothing here
mutates a frame: `custom_context()`, `group()`, traces and child submission install new ones, so every asyncio task
and thread started inside a block sees exactly the frame that was current when it started.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from flyte_celery._logging import set_log_context_provider

if TYPE_CHECKING:
    from flyte_celery._checkpoint import Checkpoint
    from flyte_celery._controllers.base import Controller
    from flyte_celery._run_spec import RunSpec

Mode = Literal["local", "remote", "hybrid"]
MODES: tuple[Mode, ...] = ("local", "remote", "hybrid")
ROOT_ACTION_NAME = "a0"
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(number: int) -> str:
    digits = []
    while number:
        number, rest = divmod(number, 36)
        digits.append(_BASE36[rest])
    return "".join(reversed(digits)) or "0"


@dataclass(frozen=True, kw_only=True)
class ActionID:
    """Identity of one action (one task invocation) within a run.

    Attributes:
        name: Unique name of the action within its run; the root action is "a0".
        run_name: Name of the run; defaults to `name`.
        project: Project the action runs in.
        domain: Domain the action runs in.
        org: Organisation.
    """

    name: str
    run_name: str | None = None
    project: str | None = None
    domain: str | None = None
    org: str | None = None

    def __post_init__(self) -> None:
        if self.run_name is None:
            object.__setattr__(self, "run_name", self.name)

    @property
    def key(self) -> str:
        """`<run>/<action>`: unique among the actions a process may host at once, across runs."""
        return f"{self.run_name}/{self.name}"

    def new_sub_action(self, name: str | None = None) -> ActionID:
        """A child action with the given (or a random) name, in the same run."""
        return dataclasses.replace(self, name=name or f"{self.name}-{secrets.token_hex(4)}")

    def new_sub_action_from(
        self, *, task_call_seq: int, task_hash: str, input_hash: str, group: str | None
    ) -> ActionID:
        """The deterministic child for a call: same parent, task, inputs, call sequence and group -> same name."""
        seed = f"{self.name}-{input_hash}-{task_hash}-{task_call_seq}" + (f"-{group}" if group else "")
        digest = int.from_bytes(hashlib.md5(seed.encode(), usedforsecurity=False).digest(), "big")
        return ActionID(
            name=_base36(digest), run_name=self.run_name, project=self.project, domain=self.domain, org=self.org
        )

    def unique_id_str(self, salt: str | None = None) -> str:
        """`project-domain-run-action[-salt]`: an id that is unique across runs."""
        parts = [self.project, self.domain, self.run_name, self.name, salt]
        return "-".join(str(p) for p in parts if p is not None)


@dataclass(frozen=True)
class RawDataPath:
    """The storage prefix (fsspec URL or local path) where offloaded data is written."""

    path: str

    def get_random_remote_path(self, file_name: str | None = None) -> str:
        """A fresh path under the prefix: `<path>/<random hex>[/<file_name>]`; local parents are created."""
        base = f"{self.path.rstrip('/')}/{secrets.token_hex(16)}"
        if "://" not in self.path or self.path.startswith("file://"):
            os.makedirs(base.removeprefix("file://"), exist_ok=True)
        return f"{base}/{file_name}" if file_name else base


@dataclass(frozen=True)
class GroupData:
    """The `flyte.group(...)` a call is made in."""

    name: str


@dataclass(frozen=True, kw_only=True)
class TaskContext:
    """What a running task can read about itself and its run (`flyte_celery.ctx()`).

    Attributes:
        action: This action's identity (a trace's pseudo-action inside `@trace`).
        task_action: The running task's own action, even inside a trace.
        mode: "local", "remote" (on a worker) or "hybrid" (the root of a hybrid run).
        version: The run's code version, or the task's cache version when the run has none.
        raw_data_path: Prefix for offloaded data (files, dirs, data frames).
        run_base_dir: Prefix for the run's metadata; each action owns `<run_base_dir>/<action name>`.
        output_path: This action's metadata prefix.
        custom_context: String metadata propagated from the run and from enclosing `custom_context()` blocks.
        disable_run_cache: Whether this run neither reads nor writes the cache.
        run_start_time: When the run started (one value for the whole run).
        attempt_number: 0 for the first attempt, then 1, 2, ... on retries.
        group_data: The `group()` the code is running in, if any.
        data: Free-form per-action data (`ctx()["key"]`).
        interactive_mode: Whether the run was started from a notebook.
        input_path: Where this action's inputs are stored, when they are.
    """

    action: ActionID
    task_action: ActionID | None = None
    mode: Mode = "local"
    version: str = ""
    raw_data_path: RawDataPath = RawDataPath("")
    run_base_dir: str = ""
    output_path: str = ""
    custom_context: Mapping[str, str] = field(default_factory=dict)
    disable_run_cache: bool = False
    run_start_time: datetime | None = None
    attempt_number: int = 0
    group_data: GroupData | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    interactive_mode: bool = False
    input_path: str | None = None

    def __post_init__(self) -> None:
        if self.task_action is None:
            object.__setattr__(self, "task_action", self.action)

    def is_in_cluster(self) -> bool:
        """True when the task runs on a worker of the fleet (mode "remote")."""
        return self.mode == "remote"

    @functools.cached_property
    def checkpoint(self) -> Checkpoint:
        """This action's checkpoint: `load()` what an earlier attempt (or worker) saved, `save(...)` the state to
        resume from (see `flyte_celery._checkpoint`)."""
        from flyte_celery._checkpoint import CHECKPOINT_NAME, Checkpoint
        from flyte_celery._storage.urls import join

        action = self.task_action or self.action
        return Checkpoint(join(self.raw_data_path.path, action.name, CHECKPOINT_NAME))

    def replace(self, **changes: Any) -> TaskContext:
        """A copy with `changes` applied; `data` is merged rather than replaced."""
        if "data" in changes:
            changes["data"] = {**self.data, **changes["data"]}
        return dataclasses.replace(self, **changes)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


@dataclass(frozen=True)
class Frame:
    """The runtime state of the code running now: its task context, its run and the controller it submits to."""

    task: TaskContext
    run: RunSpec
    controller: Controller
    in_trace: bool = False
    task_name: str | None = None  # the running task's, for log lines


_frame: ContextVar[Frame | None] = ContextVar("flyte_celery_frame", default=None)


def current_frame() -> Frame | None:
    return _frame.get()


def enter_frame(frame: Frame) -> Token[Frame | None]:
    """Make `frame` current; `leave_frame(token)` restores the previous one (a context manager costs more here)."""
    return _frame.set(frame)


def leave_frame(token: Token[Frame | None]) -> None:
    _frame.reset(token)


@contextmanager
def frame_installed(frame: Frame) -> Iterator[Frame]:
    token = _frame.set(frame)
    try:
        yield frame
    finally:
        _frame.reset(token)


@contextmanager
def task_context_replaced(**changes: Any) -> Iterator[TaskContext | None]:
    """Within the block, the current frame's task context has `changes`; outside any task it does nothing."""
    frame = _frame.get()
    if frame is None:
        yield None
        return
    new_frame = dataclasses.replace(frame, task=frame.task.replace(**changes))
    with frame_installed(new_frame):
        yield new_frame.task


def ctx() -> TaskContext | None:
    """The `TaskContext` of the running task, or None outside a task."""
    frame = _frame.get()
    return frame.task if frame is not None else None


def _log_context() -> tuple[str | None, str | None, str | None] | None:
    frame = _frame.get()
    if frame is None:
        return None
    action = frame.task.action
    return action.run_name, action.name, frame.task_name


set_log_context_provider(_log_context)
