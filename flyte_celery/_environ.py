"""Applying actions' `env_vars` to the process environment while they run, safely when they overlap.

Several actions can be in flight in one process (a local run, or parents suspended on a worker next to a running
leaf). Overlays may end in any order, so instead of saving and restoring values per block, each key is recomputed
from the overlays still active (the most recent wins) or, when none is left, restored to its original value.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

_lock = threading.Lock()
_active: dict[int, Mapping[str, str]] = {}
_original: dict[str, str | None] = {}
_ids = itertools.count()


@contextmanager
def environ_overlay(values: Mapping[str, str]) -> Iterator[None]:
    """Within the block, `os.environ` has `values`; afterwards each key is as the remaining overlays say."""
    if not values:
        yield
        return
    overlay_id = next(_ids)
    with _lock:
        for key in values:
            _original.setdefault(key, os.environ.get(key))
        _active[overlay_id] = dict(values)
        os.environ.update(values)
    try:
        yield
    finally:
        with _lock:
            del _active[overlay_id]
            for key in values:
                _restore(key)


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
