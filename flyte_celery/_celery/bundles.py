"""Code bundles in Redis, sealed for their digest, and the ones this process has built or loaded.

A bundle over `BUNDLE_INLINE_MAX_BYTES` (a big source tree of `copy_style="all"`) is written to the run's metadata
directory, `<run_base_dir>/bundles/<digest>.bundle`, and Redis holds `REFERENCE_MAGIC` and its URL, sealed for
the digest; a worker reads it from there and checks it as it checks one read from Redis.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Final, cast

import redis.asyncio as aioredis

from flyte_celery._celery.bundle import Bundle, build_bundle, bundle_digest, open_bundle, seal_bundle
from flyte_celery._celery.keys import Keys
from flyte_celery._celery.offload import REFERENCE_MAGIC
from flyte_celery._config_model import CopyStyle
from flyte_celery._signing import KeyRing
from flyte_celery._storage import get_bytes, join, put_bytes_sync
from flyte_celery._task import TaskTemplate
from flyte_celery.errors import RuntimeSystemError

MAX_CACHED_BUNDLES: Final = 64
BUNDLE_INLINE_MAX_BYTES: Final = 1024 * 1024
BUNDLE_REFERENCE_PURPOSE: Final = "bundle-reference"


def bundle_record(keyring: KeyRing, data: bytes, store_dir: str | None) -> bytes:
    """What Redis holds for a bundle: the sealed bundle, or for a big one (written to `store_dir` here) a sealed
    reference to it."""
    sealed = seal_bundle(keyring, data)
    if len(sealed) <= BUNDLE_INLINE_MAX_BYTES or not store_dir:
        return sealed
    digest = bundle_digest(data)
    url = join(store_dir, "bundles", f"{digest}.bundle")
    put_bytes_sync(url, sealed)
    return REFERENCE_MAGIC + keyring.seal(url.encode(), BUNDLE_REFERENCE_PURPOSE, digest)


class BundleCache:
    """Stores a task's bundle once per digest and loads bundles by digest, keeping the last few in memory."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, keyring: KeyRing) -> None:
        self.redis = redis
        self.keys = keys
        self.keyring = keyring
        self._bundles: dict[str, Bundle] = {}
        self._digest_of: dict[int, str] = {}

    async def digest_for(
        self,
        task: TaskTemplate[Any, Any],
        copy_style: CopyStyle = "loaded_modules",
        root_dir: Path | None = None,
        store_dir: str | None = None,
    ) -> str:
        """The digest of a stored bundle holding `task`, building and storing one (in `copy_style`, big ones under
        `store_dir`) if this process has none."""
        digest = self._digest_of.get(id(task))
        if digest is not None:
            return digest
        data, bundle = build_bundle(task, copy_style, root_dir)
        digest = bundle_digest(data)
        record = seal_bundle(self.keyring, data)
        if len(record) > BUNDLE_INLINE_MAX_BYTES:
            record = await asyncio.to_thread(bundle_record, self.keyring, data, store_dir)
        await self.redis.set(self.keys.bundle(digest), record, ex=self.keys.run_ttl_s)
        self._index(digest, bundle)
        return digest

    async def load(self, digest: str) -> Bundle:
        """The bundle stored under `digest`.

        Raises:
            RuntimeSystemError: If it is not in Redis.
            UnsafePayloadError: If what is stored there was not sealed for it.
        """
        bundle = self._bundles.get(digest)
        if bundle is not None:
            return bundle
        blob = await self.redis.get(self.keys.bundle(digest))
        if blob is None:
            raise RuntimeSystemError(
                "BundleNotFound", f"code bundle {digest} is not in Redis (expired or never stored)"
            )
        blob = cast(bytes, blob)
        if blob.startswith(REFERENCE_MAGIC):
            what = f"reference to code bundle {digest}"
            url = self.keyring.open(blob[len(REFERENCE_MAGIC) :], BUNDLE_REFERENCE_PURPOSE, digest, what=what)
            blob = await get_bytes(url.decode())
        bundle = open_bundle(self.keyring, digest, blob)
        self._index(digest, bundle)
        return bundle

    def loaded(self, digest: str) -> Bundle | None:
        """The bundle stored under `digest`, if this process has loaded it."""
        return self._bundles.get(digest)

    def _index(self, digest: str, bundle: Bundle) -> None:
        if len(self._bundles) >= MAX_CACHED_BUNDLES:
            old = self._bundles.pop(next(iter(self._bundles)))
            for task in old.tasks.values():
                self._digest_of.pop(id(task), None)
        self._bundles[digest] = bundle
        for task in bundle.tasks.values():
            self._digest_of[id(task)] = digest
