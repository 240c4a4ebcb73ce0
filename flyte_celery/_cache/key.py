"""The cache key: which stored result a call may reuse.

Format (version 1 of this layout, `KEY_FORMAT`)::

    global scope:          g:<digest>
    project-domain scope:  pd:<project>:<domain>:<digest>

`<digest>` is the hex SHA-256 of the length-prefixed fields `KEY_FORMAT`, task name, inputs hash, interface hash
and cache version, so no field can bleed into the next. `<project>` and `<domain>` are percent-encoded (":" and "/"
included), so two different pairs never produce the same prefix; a missing project or domain counts as "". Keys
are plain ASCII, safe as Redis key suffixes and SQLite text, and a project's entries share a listable prefix.
Unlike Flyte (base64 of SHA-256 over the bare concatenation) this layout is unambiguous; keys are not meant to be
shared with a Flyte backend.
"""

from __future__ import annotations

import hashlib
from typing import Final, get_args
from urllib.parse import quote

from flyte_celery._cache.policy import CacheLookupScope

KEY_FORMAT: Final = "fc-cache-v1"
_SCOPES: Final[tuple[str, ...]] = get_args(CacheLookupScope)


def cache_key(
    *,
    task_name: str,
    inputs_hash: str,
    interface_hash: str,
    cache_version: str,
    scope: CacheLookupScope,
    project: str | None,
    domain: str | None,
) -> str:
    """Return the cache key of one call (see the module docstring for the format).

    Args:
        task_name: Fully qualified task name (`<env>.<function>`).
        inputs_hash: `hashing.inputs_hash` of the call's inputs, ignored inputs already dropped.
        interface_hash: `hashing.interface_hash` of the task's interface.
        cache_version: `Cache.get_version(...)` for the task.
        scope: "global" shares entries across projects and domains; "project-domain" keeps them apart.
        project: The run's project (used only with "project-domain").
        domain: The run's domain (used only with "project-domain").

    Raises:
        ValueError: On an unknown scope.
    """
    fields = (KEY_FORMAT, task_name, inputs_hash, interface_hash, cache_version)
    digest = hashlib.sha256("".join(f"{len(f)}:{f}" for f in fields).encode("utf-8")).hexdigest()
    if scope == "global":
        return f"g:{digest}"
    if scope == "project-domain":
        return f"pd:{quote(project or '', safe='')}:{quote(domain or '', safe='')}:{digest}"
    raise ValueError(f"invalid cache lookup scope {scope!r}: expected one of {list(_SCOPES)}")
