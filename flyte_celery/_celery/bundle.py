"""Code bundles: the task tree of a run, cloudpickled once per code version, fetched and cached by workers.

The client walks from the root task through the globals and closures its functions use, collecting every task
it can reach. User modules (not installed packages, not the standard library) are pickled by value, so workers
need only flyte-celery and the third-party packages the code imports. Cache versions are computed here, where
the source is available, and travel in the bundle so workers compute the same cache keys as local mode.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import site
import sys
import sysconfig
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle

from flyte_celery._action_call import remember_cache_version
from flyte_celery._cache import FunctionBodyPolicy, VersionParameters
from flyte_celery._celery.bundle_sources import Sources, restore_sources, sources_of
from flyte_celery._environment import Environment, TaskEnvironment
from flyte_celery._signing import KeyRing
from flyte_celery._task import TaskTemplate
from flyte_celery._values import loads_value
from flyte_celery.errors import UnsafePayloadError

BUNDLE_DIGEST_CHARS = 32
BUNDLE_PURPOSE = "bundle"
_NOT_USER_CODE = frozenset({"builtins", "typing", "abc", "enum", "collections", "dataclasses"})


@dataclass(frozen=True)
class Bundle:
    """A task tree: tasks by name, their cache versions computed from source, and the source of their modules."""

    tasks: dict[str, TaskTemplate[Any, Any]]
    cache_versions: dict[str, str]
    sources: Sources = field(default_factory=dict)


def register_bundle(bundle: Bundle) -> None:
    for name, task in bundle.tasks.items():
        version = bundle.cache_versions.get(name)
        if version is not None:
            remember_cache_version(task.func, version)
    restore_sources(bundle.tasks.values(), bundle.sources)


def collect_tasks(root: TaskTemplate[Any, Any]) -> dict[str, TaskTemplate[Any, Any]]:
    """Every task reachable from `root` through the globals, closures and environments its code uses."""
    found: dict[str, TaskTemplate[Any, Any]] = {}
    seen: set[int] = set()
    stack: list[Any] = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, TaskTemplate):
            found.setdefault(obj.name, obj)
            stack.append(obj.func)
        elif isinstance(obj, TaskEnvironment):
            stack.extend(obj.tasks.values())
            stack.extend(obj.depends_on)
        elif isinstance(obj, Environment):
            stack.extend(obj.depends_on)
        elif isinstance(obj, functools.partial):
            stack.extend([obj.func, *obj.args, *obj.keywords.values()])
        elif isinstance(obj, types.FunctionType):
            stack.extend(_referenced(obj))
        elif isinstance(obj, (staticmethod, classmethod)):
            stack.append(obj.__func__)
        elif isinstance(obj, type) and obj.__module__ not in _NOT_USER_CODE:
            stack.extend(vars(obj).values())  # methods of the user's classes may call tasks
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
    return found


def _referenced(func: types.FunctionType) -> Iterator[Any]:
    func = inspect.unwrap(func)
    names = set(_code_names(func.__code__))
    module_globals = func.__globals__
    for name in names:
        if name in module_globals:
            value = module_globals[name]
            yield value
            if isinstance(value, types.ModuleType):
                yield from (getattr(value, attr) for attr in names if hasattr(value, attr))
    for cell in func.__closure__ or ():
        try:
            yield cell.cell_contents
        except ValueError:  # an empty cell
            continue
    yield from (func.__defaults__ or ())
    yield from (func.__kwdefaults__ or {}).values()


def _code_names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_names(const)


def build_bundle(root: TaskTemplate[Any, Any]) -> tuple[bytes, Bundle]:
    """Pickle the task tree of `root` (user modules by value); returns the bytes and the bundle."""
    tasks = collect_tasks(root)
    versions = {}
    for name, task in tasks.items():
        if task.cache.is_enabled():
            versions[name] = task.cache.get_version(VersionParameters(func=task.func, image=task.image))
    bundle = Bundle(tasks, versions, sources_of(tasks.values()))
    return dumps_by_value(bundle), bundle


def bundle_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:BUNDLE_DIGEST_CHARS]


def seal_bundle(keys: KeyRing, data: bytes) -> bytes:
    """The bundle's bytes sealed for the key they are stored under (their digest)."""
    return keys.seal(data, BUNDLE_PURPOSE, bundle_digest(data))


def open_bundle(keys: KeyRing, digest: str, blob: bytes) -> Bundle:
    """The bundle stored under `digest`, if sealed for it and its bytes hash to it.

    Raises:
        UnsafePayloadError: If not.
    """
    what = f"code bundle {digest}"
    data = keys.open(blob, BUNDLE_PURPOSE, digest, what=what)
    if bundle_digest(data) != digest:
        raise UnsafePayloadError(f"{what} does not hash to its digest")
    bundle = loads_value(data)
    if not isinstance(bundle, Bundle):
        raise UnsafePayloadError(f"{what} holds a {type(bundle).__name__}, not a bundle")
    register_bundle(bundle)
    return bundle


def dumps_by_value(value: Any) -> bytes:
    """Pickle a value (a task tree, inputs) so that functions and classes of user modules travel with it."""
    registered = _register_user_modules()
    try:
        return cloudpickle.dumps(value)  # type: ignore[no-any-return]
    finally:
        for module in registered:
            cloudpickle.unregister_pickle_by_value(module)


def code_version(bundle: Bundle) -> str:
    """A version of the bundle's code that is the same in every process: from each task's source (its AST), not
    from the pickle bytes, which vary with hash seeds."""
    policy = FunctionBodyPolicy()
    parts = sorted(
        f"{name}={policy.get_version('', VersionParameters(func=t.func))}" for name, t in bundle.tasks.items()
    )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:BUNDLE_DIGEST_CHARS]


_INSTALLED_ROOTS = tuple(
    str(Path(p).resolve())
    for p in {
        *(sysconfig.get_paths()[key] for key in ("purelib", "platlib", "stdlib", "platstdlib")),
        *site.getsitepackages(),
        site.getusersitepackages(),
        *(p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages"))),
    }
)


_user_modules: tuple[int, list[types.ModuleType]] = (-1, [])


def _register_user_modules() -> list[types.ModuleType]:
    """Register every loaded user module for pickling by value (as Flyte's "loaded_modules" copy style: helpers
    imported by task modules travel too); returns those this call registered, leaving the user's own alone."""
    already = set(cloudpickle.list_registry_pickle_by_value())
    registered = []
    for module in _loaded_user_modules():
        if module.__name__ in already:
            continue
        try:
            cloudpickle.register_pickle_by_value(module)
        except ValueError:
            continue
        registered.append(module)
    return registered


def _loaded_user_modules() -> list[types.ModuleType]:
    global _user_modules
    count, modules = _user_modules
    if count != len(sys.modules):  # recomputed only when modules were imported since
        modules = [
            module
            for name, module in list(sys.modules.items())
            if module is not None and name != "__main__" and is_user_module(module)
        ]
        _user_modules = (len(sys.modules), modules)
    return modules


def is_user_module(module: types.ModuleType) -> bool:
    """True for a module of the user's own code: a file outside site-packages, the stdlib and flyte_celery."""
    file = getattr(module, "__file__", None)
    if not file or module.__name__.split(".")[0] == "flyte_celery":
        return False
    path = str(Path(file).resolve())
    return not any(path == root or path.startswith(root + os.sep) for root in _INSTALLED_ROOTS)
