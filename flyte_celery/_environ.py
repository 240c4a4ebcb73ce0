"""Applying a run's `env_vars` to the process environment for as long as it runs in this process."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

_lock = threading.Lock()


@contextmanager
def environ_overlay(values: Mapping[str, str]) -> Iterator[None]:
    """Within the block, `os.environ` has `values`; afterwards every key is restored (or removed) as it was."""
    if not values:
        yield
        return
    with _lock:
        saved = {key: os.environ.get(key) for key in values}
        os.environ.update(values)
    try:
        yield
    finally:
        with _lock:
            for key, old in saved.items():
                if old is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = old
