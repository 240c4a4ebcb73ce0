"""Applying actions' `env_vars` to the process environment while they run, safely when they overlap.

Several actions can be in flight in one process (a local run, or parents suspended on a worker next to a running
leaf). Overlays may end in any order, so instead of saving and restoring values per block, each key is recomputed
from the overlays still active (the most recent wins) or, when none is left, restored to its original value. An
action waiting on children elsewhere pauses its overlay (`environ_paused`), so code of other runs that executes in
the meantime does not see its variables.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator, Mapping
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
