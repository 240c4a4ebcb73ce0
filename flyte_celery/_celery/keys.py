"""Every Redis key family flyte-celery writes, with its TTL. All keys start with the configured prefix
(`redis.key_prefix`, default "flyte_celery:")."""

from __future__ import annotations

from typing import Final

RESULT_TTL_S: Final = 7 * 24 * 3600  # result:<run>:<action>  signed outcome of a finished action
WAITERS_TTL_S: Final = 7 * 24 * 3600  # waiters:<run>:<action>  reply channels to notify when it finishes
ENQUEUED_TTL_S: Final = 7 * 24 * 3600  # enqueued:<run>:<action>  set once the action's message is published
RUN_TTL_S: Final = 30 * 24 * 3600  # run:<run>  hash: the run's record (root task, labels, phase, ...)
BUNDLE_TTL_S: Final = 30 * 24 * 3600  # bundle:<digest>  signed cloudpickled task tree
MESSAGE_TTL_S: Final = 7 * 24 * 3600  # message:<run>:<action>  stored message of an action that is running
LEASE_TTL_S: Final = 10.0  # score in the `leases` sorted set: when a running action's lease expires
LEASE_REFRESH_S: Final = 2.0  # how often a worker renews the leases of the actions it hosts
SWEEP_INTERVAL_S: Final = 2.0  # how often a worker looks for expired leases to take over

# cache:<key>, cache-lock:<key>, cache-done:<key>: the Redis cache store's entries (no TTL unless configured),
# serialize reservations and wake-up channel; written by flyte_celery._cache.redis_store under the same prefix.
ABORT_CHANNEL: Final = "abort"  # pubsub: run names being aborted
LEASES: Final = "leases"  # sorted set: <run>:<action> -> lease expiry (unix seconds)


def lease_member(run: str, action: str) -> str:
    """An action's member in the `leases` sorted set."""
    return f"{run}:{action}"


class Keys:
    """Key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def result(self, run: str, action: str) -> str:
        return f"{self.prefix}result:{run}:{action}"

    def waiters(self, run: str, action: str) -> str:
        return f"{self.prefix}waiters:{run}:{action}"

    def enqueued(self, run: str, action: str) -> str:
        return f"{self.prefix}enqueued:{run}:{action}"

    def run(self, run: str) -> str:
        return f"{self.prefix}run:{run}"

    def bundle(self, digest: str) -> str:
        return f"{self.prefix}bundle:{digest}"

    def message(self, run: str, action: str) -> str:
        return f"{self.prefix}message:{run}:{action}"

    def aborted(self, run: str) -> str:
        return f"{self.prefix}aborted:{run}"

    @property
    def leases(self) -> str:
        return f"{self.prefix}{LEASES}"

    @property
    def abort_channel(self) -> str:
        return f"{self.prefix}{ABORT_CHANNEL}"

    def reply_channel(self, process_id: str) -> str:
        return f"{self.prefix}reply:{process_id}"
