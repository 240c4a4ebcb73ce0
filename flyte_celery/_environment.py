"""`TaskEnvironment`: a named group of tasks sharing settings, and its `@env.task` decorator."""

from __future__ import annotations

import dataclasses
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, ParamSpec, TypeVar, overload

from flyte_celery._cache import CacheRequest
from flyte_celery._interface import NativeInterface
from flyte_celery._task import DEFAULT_MAX_INLINE_IO_BYTES, AsyncFunctionTaskTemplate, TaskTemplate, normalise_settings

P = ParamSpec("P")
R = TypeVar("R")
ENV_NAME_PATTERN: Final = re.compile(r"^[a-z0-9]+([_-][a-z0-9]+)*$")
MAX_DESCRIPTION_CHARS: Final = 255
_registry: weakref.WeakValueDictionary[str, Environment] = weakref.WeakValueDictionary()


@dataclass
class Environment:
    """Settings shared by a group of tasks (Flyte's `flyte.Environment`).

    Raises:
        ValueError: If `name` is not lowercase letters and digits separated by single `-` or `_`.
    """

    name: str
    depends_on: list[Environment] = field(default_factory=list)
    pod_template: Any = None
    description: str | None = None
    secrets: Any = None
    env_vars: dict[str, str] | None = None
    resources: Any = None
    interruptible: bool = False
    image: Any = "auto"
    include: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not ENV_NAME_PATTERN.match(self.name):
            raise ValueError(
                f"invalid environment name {self.name!r}: use lowercase letters and digits, "
                "optionally separated by single '-' or '_' (e.g. 'my-env')"
            )
        if self.description is not None and len(self.description) > MAX_DESCRIPTION_CHARS:
            self.description = self.description[:MAX_DESCRIPTION_CHARS]
        if self.env_vars is not None:
            for key, value in self.env_vars.items():
                if not isinstance(key, str) or not isinstance(value, str):
                    raise ValueError(f"env_vars of environment {self.name!r} must map strings to strings")
        _registry[self.name] = self

    def add_dependency(self, *envs: Environment) -> None:
        """Declare environments this one's tasks call into."""
        for env in envs:
            if env is not self and env not in self.depends_on:
                self.depends_on.append(env)

    def __hash__(self) -> int:
        return id(self)


@dataclass(eq=False)
class TaskEnvironment(Environment):
    """A named environment whose `@env.task` functions become tasks.

    Example:
        env = flyte_celery.TaskEnvironment("my-env", cache="auto")

        @env.task
        async def double(n: int) -> int:
            return n * 2
    """

    cache: CacheRequest = "disable"
    reusable: Any = None
    plugin_config: Any = None
    queue: str | None = None
    _tasks: dict[str, TaskTemplate[Any, Any]] = field(default_factory=dict, init=False, repr=False)

    @property
    def tasks(self) -> dict[str, TaskTemplate[Any, Any]]:
        """The environment's tasks by fully qualified name."""
        return dict(self._tasks)

    def clone_with(self, name: str, **changes: Any) -> TaskEnvironment:
        """A new environment with another name and some settings changed (tasks are not copied)."""
        return dataclasses.replace(self, name=name, **changes)

    @classmethod
    def from_task(cls, name: str, *tasks: TaskTemplate[Any, Any]) -> TaskEnvironment:
        """An environment holding existing tasks."""
        env = cls(name)
        for task in tasks:
            env._tasks[task.name] = task
        return env

    @overload
    def task(self, _func: Callable[P, R], /) -> AsyncFunctionTaskTemplate[P, R]: ...

    @overload
    def task(
        self,
        _func: None = None,
        /,
        *,
        short_name: str | None = None,
        cache: CacheRequest | None = None,
        retries: Any = 0,
        timeout: Any = 0,
        docs: str | None = None,
        pod_template: Any = None,
        report: bool = False,
        interruptible: bool | None = None,
        max_inline_io_bytes: int = DEFAULT_MAX_INLINE_IO_BYTES,
        queue: str | None = None,
        triggers: Any = (),
        links: Any = (),
        task_resolver: Any = None,
        entrypoint: bool = False,
        produces_artifacts: bool = False,
    ) -> Callable[[Callable[P, R]], AsyncFunctionTaskTemplate[P, R]]: ...

    def task(
        self,
        _func: Callable[P, R] | None = None,
        /,
        *,
        short_name: str | None = None,
        cache: CacheRequest | None = None,
        retries: Any = 0,
        timeout: Any = 0,
        docs: str | None = None,
        pod_template: Any = None,
        report: bool = False,
        interruptible: bool | None = None,
        max_inline_io_bytes: int = DEFAULT_MAX_INLINE_IO_BYTES,
        queue: str | None = None,
        triggers: Any = (),
        links: Any = (),
        task_resolver: Any = None,
        entrypoint: bool = False,
        produces_artifacts: bool = False,
    ) -> AsyncFunctionTaskTemplate[P, R] | Callable[[Callable[P, R]], AsyncFunctionTaskTemplate[P, R]]:
        """Turn a function (async or sync) into a task of this environment; usable bare or with arguments."""
        settings = normalise_settings(
            {
                "cache": cache if cache is not None else self.cache,
                "retries": retries,
                "timeout": timeout or None,
                "links": links,
                "triggers": triggers,
            }
        )

        def decorate(func: Callable[P, R]) -> AsyncFunctionTaskTemplate[P, R]:
            if not callable(func):
                raise TypeError(f"@{self.name}.task expects a function, got {func!r}")
            name = f"{self.name}.{func.__name__}"
            task: AsyncFunctionTaskTemplate[P, R] = AsyncFunctionTaskTemplate(
                name=name,
                short_name=short_name or func.__name__,
                env_name=self.name,
                func=func,
                interface=NativeInterface.from_callable(func, name),
                queue=queue or self.queue,
                interruptible=self.interruptible if interruptible is None else interruptible,
                docs=docs or func.__doc__,
                report=report,
                resources=self.resources,
                image=self.image,
                secrets=self.secrets,
                env_vars=dict(self.env_vars or {}),
                pod_template=pod_template or self.pod_template,
                reusable=self.reusable,
                plugin_config=self.plugin_config,
                max_inline_io_bytes=max_inline_io_bytes,
                entrypoint=entrypoint,
                produces_artifacts=produces_artifacts,
                **settings,
            )
            self._tasks[name] = task
            return task

        if _func is not None:
            return decorate(_func)
        return decorate
