"""`with_runcontext(...)` and `run(...)`: start a run of a task in the configured mode and return its `Run`."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from typing import Any

from flyte_celery._action_call import bind_inputs, prepare_root_call
from flyte_celery._cache import SQLiteCacheStore
from flyte_celery._cache.sealed import SealedCache
from flyte_celery._config_model import Settings
from flyte_celery._context import ROOT_ACTION_NAME
from flyte_celery._controllers.local import LocalController
from flyte_celery._custom_context import driver_custom_context
from flyte_celery._environ import environ_overlay
from flyte_celery._execution import execute_action
from flyte_celery._init import current_settings
from flyte_celery._keyrings import local_keyring
from flyte_celery._logging import configure_logging
from flyte_celery._run import CELERY_LAUNCHER, ActionOutputs, CompletedRun, DryRun, Run, remember
from flyte_celery._run_options import UNSET, RunOptions
from flyte_celery._run_spec import RunSpec
from flyte_celery._syncify import syncify
from flyte_celery._task import TaskTemplate

_local_caches: dict[Path, SealedCache] = {}


class Runner:
    """What `with_runcontext(...)` returns: call `.run(task, *args, **kwargs)` (or `await .run.aio(...)`)."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options

    @syncify
    async def run(self, task: TaskTemplate[Any, Any], *args: Any, **kwargs: Any) -> Run:
        """Run `task` with these options and return its `Run`.

        Local runs finish before this returns and raise the run's error if it fails; remote runs return as soon
        as the root is enqueued.

        Raises:
            TypeError: If `task` is not a task, or the arguments do not fit it.
            BaseRuntimeError: In local (and hybrid) mode, the run's failure.
        """
        if not isinstance(task, TaskTemplate):
            raise TypeError(f"run() expects a task (made with @env.task), got {task!r}")
        settings = current_settings()
        spec = self.options.resolve(settings, extra_custom_context=driver_custom_context())
        bind_inputs(task, args, kwargs)  # a bad argument fails here, before any run record or message exists
        _configure_logging(self.options, spec)
        if spec.mode == "local":
            return await _run_local(spec, settings, task, args, kwargs, dry_run=bool(self.options.dry_run))
        launcher = importlib.import_module(CELERY_LAUNCHER)
        run: Run = await launcher.launch(spec, settings, task, args, kwargs, self.options)
        return run


def _configure_logging(options: RunOptions, spec: RunSpec) -> None:
    if options.log_level is UNSET and options.log_format is UNSET and options.reset_root_logger is UNSET:
        return
    fmt = spec.log_format or current_settings().log.format
    configure_logging(spec.log_level, fmt, spec.reset_root_logger, user_level=spec.user_log_level)


def local_cache(settings: Settings) -> SealedCache:
    """The local-mode cache of `settings`: one per cache file in this process."""
    path = settings.local_cache_path_resolved()
    cache = _local_caches.get(path)
    if cache is None:
        store = SQLiteCacheStore(path, max_age_s=settings.cache.max_age_s)
        cache = _local_caches[path] = SealedCache(
            store, local_keyring(settings), max_entry_bytes=settings.cache.max_entry_bytes
        )
    return cache


async def _run_local(
    spec: RunSpec,
    settings: Settings,
    task: TaskTemplate[Any, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    dry_run: bool,
) -> Run:
    cache = local_cache(settings)
    controller = LocalController(spec, cache, asyncio.get_running_loop())
    call = prepare_root_call(spec, task, args, kwargs, ROOT_ACTION_NAME)
    outputs_names = tuple(task.interface.outputs) or ("o0",)
    if dry_run:
        return Run(DryRun(spec.name, spec.run_base_dir))  # arguments checked and bound above; nothing runs
    with environ_overlay({**task.env_vars, **spec.env_vars}):
        value = await execute_action(call, spec, controller, cache)
    outputs = ActionOutputs(task.interface.output_tuple(value), outputs_names)
    return remember(CompletedRun(spec.name, spec.run_base_dir, outputs))


def with_runcontext(mode: str | None = None, **options: Any) -> Runner:
    """Set run parameters, then `.run(task, ...)` (see the README for every parameter).

    Unset parameters come from the config file, then the defaults.

    Raises:
        RunOptionError: On an unknown parameter or a bad value, before anything runs.
    """
    from flyte_celery.errors import RunOptionError

    known = set(RunOptions.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise RunOptionError(unknown[0], f"unknown run parameter(s): {', '.join(unknown)}")
    given = {key: value for key, value in options.items() if value is not None}
    if mode is not None:
        given["mode"] = mode
    return Runner(RunOptions(**given))


@syncify
async def run(task: TaskTemplate[Any, Any], *args: Any, **kwargs: Any) -> Run:
    """Run `task` with every run parameter from the config (`with_runcontext().run(...)`)."""
    return await Runner(RunOptions()).run.aio(task, *args, **kwargs)
