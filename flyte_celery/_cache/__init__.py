"""Task output caching: the Flyte-compatible `Cache` API, cache keys and the stores behind `CacheStore`.

`RedisCacheStore` is not re-exported: import it from `flyte_celery._cache.redis_store` so the core never imports
redis.
"""

from __future__ import annotations

from flyte_celery._cache.hashing import encode_value, inputs_hash, interface_hash, type_repr
from flyte_celery._cache.key import cache_key
from flyte_celery._cache.policy import (
    Cache,
    CacheBehavior,
    CacheLookupScope,
    CachePolicy,
    CacheRequest,
    FunctionBodyPolicy,
    VersionParameters,
    cache_from_request,
)
from flyte_celery._cache.sqlite_store import SQLiteCacheStore
from flyte_celery._cache.store import CacheStore

__all__ = [
    "Cache",
    "CacheBehavior",
    "CacheLookupScope",
    "CachePolicy",
    "CacheRequest",
    "CacheStore",
    "FunctionBodyPolicy",
    "SQLiteCacheStore",
    "VersionParameters",
    "cache_from_request",
    "cache_key",
    "encode_value",
    "inputs_hash",
    "interface_hash",
    "type_repr",
]
