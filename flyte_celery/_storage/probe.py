"""A storage probe: write, read back and delete a tiny object, so a bad storage configuration fails a run at its
start, naming the URL and the cause, instead of at its first big value (or, on a worker, in a write nobody waits
on).

The probe's requests are bounded more tightly than ordinary ones (`PROBE_*`): a wrong endpoint answers within
seconds. A success is remembered per process for the protocol, bucket and options (the environment botocore reads
included), so a run costs at most one round trip of three requests, and later runs to the same place none.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from flyte_celery._init import current_settings
from flyte_celery._storage.errors import StorageError
from flyte_celery._storage.filesystems import filesystem
from flyte_celery._storage.operations import delete_sync, get_bytes_sync, put_bytes_sync
from flyte_celery._storage.urls import is_local, join, protocol_of

if TYPE_CHECKING:
    from flyte_celery._config_model import Settings, StorageSettings

PROBE_DIR: Final = ".flyte-celery-probe"
PROBE_BYTES: Final = b"flyte-celery storage probe"
# Bounds of the probe's requests: at most PROBE_MAX_ATTEMPTS x (connect + read timeout) per request.
PROBE_CONNECT_TIMEOUT_S: Final = 3.0
PROBE_READ_TIMEOUT_S: Final = 10.0
PROBE_MAX_ATTEMPTS: Final = 2

_lock = threading.Lock()
_passed: set[tuple[str, str, int, int]] = set()
_last_bounded: tuple[Settings, Settings] | None = None


def probe_sync(url: str, settings: Settings | None = None) -> None:
    """Check that `url` (a directory-like prefix) can be written, read and deleted, once per process and place.

    Local paths are not probed: their failures are immediate and name the path already.

    Raises:
        StorageError: Naming the probe object under `url` and the cause (unreachable endpoint, missing bucket,
            refused or missing credentials, missing pip extra, ...).
    """
    if not url or is_local(url):
        return
    bounded = _bounded(settings or current_settings())
    key = _place(url, bounded)
    with _lock:
        if key in _passed:
            return
    target = join(url, PROBE_DIR, secrets.token_hex(8))
    put_bytes_sync(target, PROBE_BYTES, settings=bounded)
    try:
        if get_bytes_sync(target, settings=bounded) != PROBE_BYTES:
            raise StorageError(target, "other", "the object read back differs from the one written", "probe")
    finally:
        delete_sync(target, settings=bounded)
    with _lock:
        _passed.add(key)


async def probe(url: str, settings: Settings | None = None) -> None:
    """`probe_sync` on a worker thread; no thread is used for a local path or a place that passed already."""
    if not url or is_local(url):
        return
    settings = settings or current_settings()
    if _place(url, _bounded(settings)) not in _passed:
        await asyncio.to_thread(probe_sync, url, settings)


async def probe_all(urls: Iterable[str], settings: Settings | None = None) -> None:
    """`probe` each of `urls` (a run's `run_base_dir` and `raw_data_path`), in order, each place once."""
    for url in dict.fromkeys(urls):
        await probe(url, settings)


def forget() -> None:
    """Forget every success (the next probe of each place makes its round trip again)."""
    with _lock:
        _passed.clear()


def _place(url: str, settings: Settings) -> tuple[str, str, int, int]:
    # Filesystems are cached per process and options, so the instance stands for the options. A missing extra or
    # an unknown protocol fails here.
    fs, path = filesystem(url, settings)
    return protocol_of(url), path.split("/", 1)[0], id(fs), os.getpid()


def _bounded(settings: Settings) -> Settings:
    global _last_bounded
    last = _last_bounded
    if last is not None and last[0] is settings:
        return last[1]  # settings are frozen: a worker probing each action copies them once
    bounded = _bounded_copy(settings)
    _last_bounded = (settings, bounded)
    return bounded


def _bounded_copy(settings: Settings) -> Settings:
    storage = settings.storage
    if (storage.connect_timeout_s, storage.read_timeout_s, storage.max_attempts) == _probe_bounds(storage):
        return settings  # already within the probe's bounds (or probed with bounded settings)
    connect, read, attempts = _probe_bounds(storage)
    tighter = storage.model_copy(
        update={"connect_timeout_s": connect, "read_timeout_s": read, "max_attempts": attempts}
    )
    return settings.model_copy(update={"storage": tighter})


def _probe_bounds(storage: StorageSettings) -> tuple[float, float, int]:
    return (
        min(storage.connect_timeout_s, PROBE_CONNECT_TIMEOUT_S),
        min(storage.read_timeout_s, PROBE_READ_TIMEOUT_S),
        min(storage.max_attempts, PROBE_MAX_ATTEMPTS),
    )
