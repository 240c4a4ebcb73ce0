"""Which signing keys the fleet's clients use: each run records its key id, and a worker starting with keys that
cannot verify recent runs says so at once, rather than refusing messages one by one later."""

from __future__ import annotations

import time
from typing import Any, Final

from flyte_celery._celery.keys import Keys
from flyte_celery._celery.reply_channel import text_of
from flyte_celery._config_model import Settings
from flyte_celery._keyrings import fleet_keyring
from flyte_celery._logging import system_logger
from flyte_celery._redis_connect import sync_client
from flyte_celery._signing import KeyRing

RECENT_S: Final = 24 * 3600  # runs started within this are "recent"


def record_signing_key(pipe: Any, keys: Keys, key_id: str) -> None:
    """Queue on `pipe` the note that a run was just signed with `key_id` (and forget ids unused for long)."""
    now = time.time()
    pipe.zadd(keys.signing_keys, {key_id: now})
    pipe.zremrangebyscore(keys.signing_keys, "-inf", now - keys.run_ttl_s)
    pipe.expire(keys.signing_keys, keys.run_ttl_s)


def recent_key_ids(client: Any, keys: Keys) -> list[str]:
    """Ids of the keys that signed runs in the last `RECENT_S` seconds."""
    return [text_of(kid) for kid in client.zrangebyscore(keys.signing_keys, time.time() - RECENT_S, "+inf")]


def unverifiable_recent_keys(client: Any, keys: Keys, keyring: KeyRing) -> list[str]:
    """Ids of keys that signed runs in the last `RECENT_S` seconds which `keyring` cannot verify."""
    return sorted(kid for kid in recent_key_ids(client, keys) if not keyring.accepts(kid))


def warn_about_unverifiable_keys(settings: Settings) -> None:
    """At a worker's start: warn if the fleet's recent runs were signed with keys this worker cannot verify."""
    keyring = fleet_keyring(settings)
    client = sync_client(settings.redis_url_resolved())
    try:
        unknown = unverifiable_recent_keys(client, Keys(settings.redis.key_prefix, settings.retention), keyring)
    except Exception as exc:
        system_logger.warning("could not check the fleet's signing keys: %s", exc)
        return
    finally:
        client.close()
    if unknown:
        system_logger.warning(
            "runs of the last %dh were signed with key id(s) %s, which this worker cannot verify (it has %s): it "
            "will put their messages back for other workers. Set security.signing_key / security.accepted_keys.",
            RECENT_S // 3600,
            ", ".join(unknown),
            ", ".join(keyring.ids),
        )
