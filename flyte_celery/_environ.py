"""Applying actions' `env_vars` to the process environment while they run, safely when they overlap.

Several actions can be in flight in one process (a local run, or parents suspended on a worker next to a running
leaf). Overlays may end in any order, so instead of saving and restoring values per block, each key is recomputed
from the overlays still active (the most recent wins) or, when none is left, restored to its original value. An
action waiting on children elsewhere pauses its overlay (`environ_paused`), so code of other runs that executes in
the meantime does not see its variables. Workers go further (`action_environ`): each action sees only its own.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar

_lock = threading.Lock()
_active: dict[int, Mapping[str, str]] = {}
_paused: dict[int, int] = {}
_original: dict[str, str | None] = {}
_ids = itertools.count()
_current: ContextVar[tuple[int, Mapping[str, str]] | None] = ContextVar("flyte_celery_environ_overlay", default=None)


@contextmanager
def environ_overlay(values: Mapping[str, str]) -> Iterator[None]:
    """Within the block, `os.environ` has `values`; afterwards each key is as the remaining overlays say."""
    if not values:
        yield
        return
    overlay_id = next(_ids)
    values = dict(values)
    with _lock:
        for key in values:
            _original.setdefault(key, os.environ.get(key))
        _active[overlay_id] = values
        os.environ.update(values)
    token = _current.set((overlay_id, values))
    try:
        yield
    finally:
        _current.reset(token)
        with _lock:
            _active.pop(overlay_id, None)
            _paused.pop(overlay_id, None)
            for key in values:
                _restore(key)


@contextmanager
def environ_paused() -> Iterator[None]:
    """Within the block, the current action's overlay (if any) is lifted; nested and concurrent pauses count."""
    current = _current.get()
    if current is None:
        yield
        return
    overlay_id, values = current
    with _lock:
        _paused[overlay_id] = _paused.get(overlay_id, 0) + 1
        if _active.pop(overlay_id, None) is not None:
            for key in values:
                _restore(key)
    try:
        yield
    finally:
        with _lock:
            remaining = _paused.get(overlay_id, 0) - 1
            if remaining > 0:
                _paused[overlay_id] = remaining
            elif overlay_id in _paused:
                del _paused[overlay_id]
                _active[overlay_id] = values
                for key in values:
                    _original.setdefault(key, os.environ.get(key))
                os.environ.update(values)


def _restore(key: str) -> None:
    for overlay in reversed(list(_active.values())):
        if key in overlay:
            os.environ[key] = overlay[key]
            return
    original = _original.pop(key, None)
    if original is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = original


# On workers, actions of several runs share a process: their env_vars live in a ContextVar instead, and
# `os.environ` is wrapped so that Python code (os.environ[...], os.getenv) sees the current action's variables.
_action_vars: ContextVar[Mapping[str, str] | None] = ContextVar("flyte_celery_action_env_vars", default=None)


class ContextEnviron(MutableMapping[str, str]):
    """`os.environ` as the current action sees it: its env_vars over the process environment.

    Writes go to the real environment; writing or deleting one of the action's own variables also drops it from
    the action's view, so the action then sees what it wrote. Child processes started with the inherited
    environment do not see an action's variables: pass `env=dict(os.environ)` to hand them over. Threads see them
    when started with the action's context (sync task bodies, `asyncio.to_thread`, `contextvars.copy_context`).
    """

    def __init__(self, real: MutableMapping[str, str]) -> None:
        self.real = real

    def __getitem__(self, key: str) -> str:
        overlay = _action_vars.get()
        if overlay is not None and key in overlay:
            return overlay[key]
        return self.real[key]

    def __setitem__(self, key: str, value: str) -> None:
        self.real[key] = value
        _forget_action_var(key)

    def __delitem__(self, key: str) -> None:
        had_own = _forget_action_var(key)
        if key in self.real:
            del self.real[key]
        elif not had_own:
            raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        overlay = _action_vars.get()
        if not overlay:
            return iter(self.real)
        return iter({**dict.fromkeys(self.real), **dict.fromkeys(overlay)})

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def copy(self) -> dict[str, str]:
        return dict(self)

    def __repr__(self) -> str:
        return f"ContextEnviron({dict(self)!r})"


def _forget_action_var(key: str) -> bool:
    overlay = _action_vars.get()
    if overlay is None or key not in overlay:
        return False
    _action_vars.set({k: v for k, v in overlay.items() if k != key})
    return True


def install_context_environ() -> None:
    """Wrap `os.environ` (once per process) so per-action variables set by `action_environ` are visible."""
    if not isinstance(os.environ, ContextEnviron):
        setattr(os, "environ", ContextEnviron(os.environ))  # noqa: B010 - os.environ is typed as os._Environ


@contextmanager
def action_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Within the block (and the tasks and threads started in it), `os.environ` shows `values` on top."""
    if not values:
        yield
        return
    token = _action_vars.set({**(_action_vars.get() or {}), **values})
    try:
        yield
    finally:
        _action_vars.reset(token)
