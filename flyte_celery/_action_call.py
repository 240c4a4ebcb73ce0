"""Turning a task call into an `ActionCall`: bound inputs, the child's deterministic identity, its cache key and
the `TaskContext` it will run with. Shared by every controller, so names and keys are the same in every mode."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flyte_celery._cache import VersionParameters, cache_key, inputs_hash
from flyte_celery._context import ActionID, Frame, Mode, RawDataPath, TaskContext
from flyte_celery._controllers.base import TaskCallSequencer
from flyte_celery._run_spec import RunSpec
from flyte_celery._task import TaskTemplate

# Cache versions computed where the source was readable (the client), for functions unpickled on a worker.
_known_cache_versions: weakref.WeakKeyDictionary[Callable[..., Any], str] = weakref.WeakKeyDictionary()


def remember_cache_version(func: Callable[..., Any], version: str) -> None:
    _known_cache_versions[func] = version


@dataclass(frozen=True)
class ActionCall:
    """One action about to run: what to run, with which inputs, as whom, and where its result may be cached."""

    task: TaskTemplate[Any, Any]
    inputs: dict[str, Any]
    context: TaskContext
    cache_key: str | None
    read_cache: bool

    @property
    def action(self) -> ActionID:
        return self.context.action


def prepare_child_call(
    frame: Frame,
    task: TaskTemplate[Any, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    sequencer: TaskCallSequencer,
    mode: Mode,
) -> ActionCall:
    """The `ActionCall` for `task(*args, **kwargs)` made by the task running in `frame`.

    Raises:
        TypeError: If the arguments do not fit the task's signature or their declared types.
    """
    inputs = bind_inputs(task, args, kwargs)
    parent = frame.task
    parent_action = parent.task_action or parent.action
    group = parent.group_data.name if parent.group_data else None
    input_digest = inputs_hash(inputs, task.interface.input_hints)
    seq = sequencer.next_seq(parent_action.key, f"{task.name}:{input_digest}:{group or ''}")
    action = parent_action.new_sub_action_from(
        task_call_seq=seq, task_hash=task.name, input_hash=input_digest, group=group
    )
    key, version = _cache_key(task, inputs, input_digest, frame.run)
    context = TaskContext(
        action=action,
        mode=mode,
        version=frame.run.version or version,
        raw_data_path=parent.raw_data_path,
        run_base_dir=parent.run_base_dir,
        output_path=f"{parent.run_base_dir.rstrip('/')}/{action.name}",
        custom_context=parent.custom_context,
        disable_run_cache=parent.disable_run_cache,
        run_start_time=parent.run_start_time,
        interactive_mode=parent.interactive_mode,
    )
    return ActionCall(task, inputs, context, key, not frame.run.overwrite_cache)


def prepare_root_call(
    run: RunSpec, task: TaskTemplate[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], action_name: str
) -> ActionCall:
    """The `ActionCall` for the root task of `run`.

    Raises:
        TypeError: If the arguments do not fit the task's signature or their declared types.
    """
    inputs = bind_inputs(task, args, kwargs)
    action = ActionID(name=action_name, run_name=run.name, project=run.project, domain=run.domain, org=run.org)
    key, version = _cache_key(task, inputs, None, run)
    context = TaskContext(
        action=action,
        mode=run.mode,
        version=run.version or version,
        raw_data_path=RawDataPath(run.raw_data_path),
        run_base_dir=run.run_base_dir,
        output_path=f"{run.run_base_dir.rstrip('/')}/{action_name}",
        custom_context=dict(run.custom_context),
        disable_run_cache=run.disable_run_cache,
        run_start_time=run.run_start_time,
        interactive_mode=run.interactive_mode,
    )
    return ActionCall(task, inputs, context, key, not run.overwrite_cache)


def bind_inputs(task: TaskTemplate[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """A call's arguments by input name, defaults filled in, each converted by its declared type.

    Raises:
        TypeError: Naming the task (and the input), when the arguments do not fit its signature or their types.
    """
    return task.interface.convert_inputs(task.interface.bind(args, kwargs, task.name), task.name)


def _cache_key(
    task: TaskTemplate[Any, Any], inputs: dict[str, Any], input_digest: str | None, run: RunSpec
) -> tuple[str | None, str]:
    cache = task.cache
    if not cache.is_enabled():
        return None, ""
    version = _known_cache_versions.get(task.func) or cache.get_version(
        VersionParameters(func=task.func, image=task.image)
    )
    if run.disable_run_cache:
        return None, version
    ignored = cache.get_ignored_inputs()
    if ignored or input_digest is None:
        input_digest = inputs_hash(inputs, task.interface.input_hints, ignored)
    key = cache_key(
        task_name=task.name,
        inputs_hash=input_digest,
        interface_hash=task.interface.hash,
        cache_version=version,
        scope=run.cache_lookup_scope,
        project=run.project,
        domain=run.domain,
    )
    return key, version
