"""Code bundles in Redis, sealed for their digest, and the ones this process has built or loaded."""

from __future__ import annotations

from typing import Any, Final, cast

import redis.asyncio as aioredis

from flyte_celery._celery.bundle import Bundle, build_bundle, bundle_digest, open_bundle, seal_bundle
from flyte_celery._celery.keys import Keys
from flyte_celery._signing import KeyRing
from flyte_celery._task import TaskTemplate
from flyte_celery.errors import RuntimeSystemError

MAX_CACHED_BUNDLES: Final = 64


class BundleCache:
    """Stores a task's bundle once per digest and loads bundles by digest, keeping the last few in memory."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, keyring: KeyRing) -> None:
        self.redis = redis
        self.keys = keys
        self.keyring = keyring
        self._bundles: dict[str, Bundle] = {}
        self._digest_of: dict[int, str] = {}

    async def digest_for(self, task: TaskTemplate[Any, Any]) -> str:
        """The digest of a stored bundle holding `task`, building and storing one if this process has none."""
        digest = self._digest_of.get(id(task))
        if digest is not None:
            return digest
        data, bundle = build_bundle(task)
        digest = bundle_digest(data)
        await self.redis.set(self.keys.bundle(digest), seal_bundle(self.keyring, data), ex=self.keys.run_ttl_s)
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
        bundle = open_bundle(self.keyring, digest, cast(bytes, blob))
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
