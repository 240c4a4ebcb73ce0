"""Code bundles: the task tree of a run, cloudpickled once per code version, fetched and cached by workers.

The client walks from the root task through the globals and closures its functions use, collecting every task
it can reach. User modules (not installed packages, not the standard library) are pickled by value, so workers
need only flyte-celery and the third-party packages the code imports. Cache versions are computed here, where
the source is available, and travel in the bundle so workers compute the same cache keys as local mode.

The copy style decides what travels besides the tasks (Flyte's `copy_style`):
- "loaded_modules" (default): every user module loaded here is pickled by value; workers need nothing else.
- "all": the source tree under the root directory travels too, as a deterministic tarball (`source_tree`); user
  modules are pickled by reference and imported on the worker from that tree, so modules imported late and files
  read beside the code are there.
- "none": nothing but the tasks; user modules are pickled by reference, so the workers' image must hold the code.

Stored bytes: `BUNDLE_MAGIC`, the tree's length (8 bytes, 0 without a tree), the tree, then the pickled `Bundle`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import io
import os
import shutil
import site
import struct
import sys
import sysconfig
import tempfile
import types
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import cloudpickle

from flyte_celery._action_call import remember_cache_version
from flyte_celery._cache import FunctionBodyPolicy, VersionParameters
from flyte_celery._celery.bundle_sources import Sources, restore_sources, sources_of
from flyte_celery._celery.source_tree import SourceTreeError, extract_tree, tree_tarball
from flyte_celery._config_model import CopyStyle
from flyte_celery._environment import Environment, TaskEnvironment
from flyte_celery._signing import Authenticated, KeyRing
from flyte_celery._task import TaskTemplate
from flyte_celery._values import UNSERIALIZABLE_CODE, loads_value
from flyte_celery.errors import RunOptionError, RuntimeSystemError, RuntimeUserError, UnsafePayloadError

BUNDLE_DIGEST_CHARS = 32
BUNDLE_PURPOSE = "bundle"
BUNDLE_MAGIC: Final = b"fcbundle2"
_TREE_LENGTH = struct.Struct(">Q")
_NOT_USER_CODE = frozenset({"builtins", "typing", "abc", "enum", "collections", "dataclasses"})


@dataclass(frozen=True)
class Bundle:
    """A task tree: tasks by name, their cache versions computed from source, and the source of their modules."""

    tasks: dict[str, TaskTemplate[Any, Any]]
    cache_versions: dict[str, str]
    sources: Sources = field(default_factory=dict)
    copy_style: CopyStyle = "loaded_modules"
    tree_digest: str = ""  # "all": the digest of the source tree the tasks were imported from


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
                with warnings.catch_warnings():  # some modules warn when read (numpy: np.object, np.str)
                    warnings.simplefilter("ignore")
                    attrs = [getattr(value, attr) for attr in names if hasattr(value, attr)]
                yield from attrs
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


def build_bundle(
    root: TaskTemplate[Any, Any], copy_style: CopyStyle = "loaded_modules", root_dir: Path | None = None
) -> tuple[bytes, Bundle]:
    """The stored bytes of the task tree of `root` in `copy_style` (module docstring), and the bundle.

    Raises:
        RunOptionError: For "all", if the root directory cannot be bundled or a task's module is not importable
            from it.
    """
    tasks = collect_tasks(root)
    versions = {}
    for name, task in tasks.items():
        if task.cache.is_enabled():
            versions[name] = task.cache.get_version(VersionParameters(func=task.func, image=task.image))
    tree = b""
    if copy_style == "all":
        tree_root = (root_dir or Path.cwd()).resolve()
        _check_importable_from(tree_root, tasks.values())
        try:
            tree = tree_tarball(tree_root)
        except (SourceTreeError, OSError) as exc:
            raise RunOptionError("copy_style", f'copy_style="all" cannot bundle {tree_root}: {exc}') from exc
    # Tasks imported by reference on the worker have their real files there; the others travel with their source.
    by_value = [t for t in tasks.values() if copy_style == "loaded_modules" or _import_location(t) is None]
    bundle = Bundle(tasks, versions, sources_of(by_value), copy_style, bundle_digest(tree) if tree else "")
    payload = dumps_by_value(bundle) if copy_style == "loaded_modules" else _dumps_by_reference(bundle)
    return BUNDLE_MAGIC + _TREE_LENGTH.pack(len(tree)) + tree + payload, bundle


class _TasksByReference(cloudpickle.CloudPickler):  # type: ignore[misc]
    """Pickles a task of an importable module as "import it from there", as Flyte's resolver does."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, TaskTemplate) and (location := _import_location(obj)) is not None:
            return import_task, location
        return super().reducer_override(obj)


def _dumps_by_reference(bundle: Bundle) -> bytes:
    buffer = io.BytesIO()
    _TasksByReference(buffer).dump(bundle)
    return buffer.getvalue()


def _import_location(task: TaskTemplate[Any, Any]) -> tuple[str, str] | None:
    """The module and qualified name `task` is importable by, if it is (not for `__main__` or local definitions)."""
    func = inspect.unwrap(task.func)
    module = sys.modules.get(func.__module__)
    if module is None or module.__name__ == "__main__" or "<locals>" in func.__qualname__:
        return None
    found: Any = module
    for part in func.__qualname__.split("."):
        found = getattr(found, part, None)
    return (module.__name__, func.__qualname__) if found is task else None


def import_task(module: str, qualname: str) -> TaskTemplate[Any, Any]:
    """The task `qualname` of `module`, imported here (how bundles of the "all" and "none" styles name tasks)."""
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not isinstance(found, TaskTemplate):
        raise ImportError(f"{module}.{qualname} is a {type(found).__name__}, not a task", name=module)
    return found


def _check_importable_from(tree_root: Path, tasks: Iterable[TaskTemplate[Any, Any]]) -> None:
    """Every user module defining a task must be importable from the tree under its own name."""
    for task in tasks:
        module = sys.modules.get(inspect.unwrap(task.func).__module__)
        if module is None or module.__name__ == "__main__" or not is_user_module(module):
            continue  # __main__ travels by value; installed packages are imported from the worker's environment
        file = Path(module.__file__ or "").resolve()
        expected = tree_root.joinpath(*module.__name__.split("."))
        if file not in (expected.with_suffix(".py"), expected / "__init__.py"):
            raise RunOptionError(
                "copy_style",
                f'copy_style="all" ships the tree under {tree_root}, but task {task.name!r} is in module '
                f"{module.__name__!r} at {file}, which a worker could not import from it: set root_dir "
                "(flyte.init_from_config(root_dir=...)) to the directory its imports start from",
            )


def bundle_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:BUNDLE_DIGEST_CHARS]


def seal_bundle(keys: KeyRing, data: bytes) -> bytes:
    """The bundle's bytes sealed for the key they are stored under (their digest)."""
    return keys.seal(data, BUNDLE_PURPOSE, bundle_digest(data))


def open_bundle(keys: KeyRing, digest: str, blob: bytes) -> Bundle:
    """The bundle stored under `digest`, if sealed for it and its bytes hash to it; "all" bundles have their tree
    extracted and importable first.

    Raises:
        UnsafePayloadError: If not sealed for it, or not a bundle.
        RuntimeSystemError: If its modules cannot be imported here (code "BundleImportError").
    """
    what = f"code bundle {digest}"
    data = keys.open(blob, BUNDLE_PURPOSE, digest, what=what)
    if bundle_digest(data) != digest:
        raise UnsafePayloadError(f"{what} does not hash to its digest")
    if not data.startswith(BUNDLE_MAGIC):
        raise UnsafePayloadError(f"{what} is not in this version's bundle format")
    start = len(BUNDLE_MAGIC) + _TREE_LENGTH.size
    (tree_length,) = _TREE_LENGTH.unpack_from(data, len(BUNDLE_MAGIC))
    if tree_length:
        _import_tree_from(data[start : start + tree_length])
    try:
        bundle = loads_value(Authenticated(data[start + tree_length :]))
    except ImportError as exc:
        raise RuntimeSystemError(
            "BundleImportError",
            f'{what} needs module {exc.name!r}, which this worker cannot import ({exc}): with copy_style="none" '
            "the workers' environment must hold the code (Image.with_code_bundle), or run with "
            'copy_style="loaded_modules" or "all"',
        ) from exc
    if not isinstance(bundle, Bundle):
        raise UnsafePayloadError(f"{what} holds a {type(bundle).__name__}, not a bundle")
    register_bundle(bundle)
    return bundle


def _import_tree_from(tree: bytes) -> None:
    """Extract a source tree (once per machine and user) and make its modules the ones `import` finds, dropping
    modules of the same names loaded from elsewhere (another tree, an older version)."""
    trees = _trees_dir()
    directory = trees / bundle_digest(tree)
    if not directory.is_dir():
        staging = Path(tempfile.mkdtemp(prefix=".extracting-", dir=trees))
        try:
            extract_tree(tree, staging)
            staging.rename(directory)
        except OSError:
            if not directory.is_dir():  # else another process extracted the same tree first
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    names = _module_names(directory)
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if name in names and file and not Path(file).resolve().is_relative_to(directory):
            del sys.modules[name]
    sys.path[:] = [str(directory), *(p for p in sys.path if Path(p).parent != trees)]


def _trees_dir() -> Path:
    """This user's directory of extracted source trees; refuses one that others could write to."""
    directory = Path(tempfile.gettempdir()) / f"flyte-celery-trees-{os.getuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    info = directory.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise UnsafePayloadError(f"{directory} is writable by other users; remove it")
    return directory


def _module_names(directory: Path) -> set[str]:
    names = set()
    for file in directory.rglob("*.py"):
        parts = file.relative_to(directory).with_suffix("").parts
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def dumps_by_value(value: Any) -> bytes:
    """Pickle a value (a task tree, inputs) so that functions and classes of user modules travel with it."""
    registered = _register_user_modules()
    try:
        return cloudpickle.dumps(value)  # type: ignore[no-any-return]
    finally:
        for module in registered:
            cloudpickle.unregister_pickle_by_value(module)


def dumps_inputs(inputs: Any, task_name: str) -> bytes:
    """An action's inputs pickled for a message (user modules by value).

    Raises:
        RuntimeUserError: code "UnserializableValueError" (as in local mode), when they cannot be pickled.
    """
    try:
        return dumps_by_value(inputs)
    except Exception as exc:
        raise RuntimeUserError(
            UNSERIALIZABLE_CODE, f"the inputs of task {task_name!r} cannot be serialized: {exc}"
        ) from exc


def code_version(bundle: Bundle) -> str:
    """A version of the bundle's code that is the same in every process: from each task's source (its AST), not
    from the pickle bytes, which vary with hash seeds. With a source tree ("all"), any change to the tree counts."""
    policy = FunctionBodyPolicy()
    parts = sorted(
        f"{name}={policy.get_version('', VersionParameters(func=t.func))}" for name, t in bundle.tasks.items()
    )
    if bundle.tree_digest:
        parts.append(f"tree={bundle.tree_digest}")
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
