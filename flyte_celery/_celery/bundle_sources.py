"""Source lines for bundled code: cloudpickle names every code object it carries "<dynamic-code>", so tracebacks
from a worker showed neither the file nor the line of the user's code. A bundle carries the source of the modules
its tasks are defined in; a worker that loads it registers that source with `linecache` and gives the functions of
those modules their file names back, so a remote traceback reads like a local one.
"""

from __future__ import annotations

import inspect
import linecache
import sys
import types
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

from flyte_celery._task import TaskTemplate

MAX_SOURCE_BYTES: Final = 1024 * 1024  # a bigger module travels without its source
Sources = dict[str, tuple[str, str]]  # module name -> (file name, source text)


def sources_of(tasks: Iterable[TaskTemplate[Any, Any]]) -> Sources:
    """The source of every module that defines one of `tasks`, when it can be read here."""
    sources: Sources = {}
    for task in tasks:
        name = inspect.unwrap(task.func).__module__
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        if name in sources or not file or not file.endswith(".py"):
            continue
        try:
            path = Path(file)
            if path.stat().st_size <= MAX_SOURCE_BYTES:
                sources[name] = (str(path), path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
    return sources


def restore_sources(tasks: Iterable[TaskTemplate[Any, Any]], sources: Sources) -> None:
    """Register `sources` with linecache and give the loaded functions of those modules their file names back."""
    for filename, text in sources.values():
        linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)
    for func in _functions_of(tasks, sources):
        filename = sources[func.__module__][0]
        if func.__code__.co_filename != filename:
            func.__code__ = _renamed(func.__code__, filename)


def _functions_of(tasks: Iterable[TaskTemplate[Any, Any]], sources: Sources) -> Iterator[types.FunctionType]:
    """The task functions, and the functions and methods defined beside them (their module's globals)."""
    seen: set[int] = set()
    for task in tasks:
        func = inspect.unwrap(task.func)
        if not isinstance(func, types.FunctionType) or func.__module__ not in sources:
            continue
        for value in [func, *func.__globals__.values()]:
            members = vars(value).values() if isinstance(value, type) else [value]
            for member in members:
                candidate = getattr(member, "__func__", member)  # static and class methods
                if (
                    isinstance(candidate, types.FunctionType)
                    and candidate.__module__ in sources
                    and id(candidate) not in seen
                ):
                    seen.add(id(candidate))
                    yield candidate


def _renamed(code: types.CodeType, filename: str) -> types.CodeType:
    consts = tuple(
        _renamed(const, filename) if isinstance(const, types.CodeType) else const for const in code.co_consts
    )
    return code.replace(co_filename=filename, co_consts=consts)
