"""Every Redis key flyte-celery writes, with its TTL. All start with `redis.key_prefix` (default "flyte_celery:").

Every key of one run carries the run's hash tag `{<run>}`, so a Redis Cluster keeps a run in one slot and each
script below touches one run's keys only. Keys shared by runs (the lease and run indexes, the dead letters) are only
ever touched by plain commands. Cache entries stand alone (see `_cache/redis_store.py`). Every key has a TTL or a bound,
so Redis with `maxmemory-policy volatile-lru` can bound memory without evicting anything that lacks one.

Key (after the prefix)        type    holds                                        TTL or bound
{<run>}:run                   hash    the run's record (root task, mode, phase)    retention.runs_s
{<run>}:result:<action>       string  the sealed outcome of a finished action      retention.results_s
{<run>}:waiters:<action>      set     reply channels to notify when it finishes    retention.results_s; gone at its end
{<run>}:enqueued:<action>     string  token of the wait that publishes its message  retention.results_s; gone at its end
{<run>}:message:<action>      string  a running action's message, to re-publish    retention.results_s; gone at its end
{<run>}:aborted               string  why the run was aborted                      retention.runs_s
{<run>}:logs:<action>         string  what it printed and logged (action_logs.py)  retention.results_s; capped
{<run>}:actions               hash    its actions' display JSON (action_index.py)  retention.runs_s; bounded (fields)
bundle:<digest>               string  a sealed code bundle                         retention.runs_s, renewed per run
leases                        zset    <run>:<action> -> lease expiry (unix s)      a member per running action
runs                          zset    run name -> creation time (unix s)           retention.runs_s; MAX_INDEXED_RUNS
dead-letters                  list    refused messages, newest first               retention.dead_letters(_s)
signing-keys                  zset    key id -> when a run was last signed with it  ids idle for runs_s dropped
reply:<process>, abort        pubsub  notifications                                no storage
"""

from __future__ import annotations

from typing import Final

from flyte_celery._config_model import RetentionSettings

LEASE_TTL_S: Final = 10.0  # score in the `leases` sorted set: when a running action's lease expires
LEASE_REFRESH_S: Final = 2.0  # how often a worker renews the leases of the actions it hosts
SWEEP_INTERVAL_S: Final = 2.0  # how often a worker looks for expired leases to take over
MAX_DEAD_LETTER_BYTES: Final = 4096  # a dead letter keeps at most this much of a refused message
MAX_INDEXED_RUNS: Final = 100_000  # the `runs` index keeps the newest this many runs
MAX_ACTION_INDEX_FIELDS: Final = 300_000  # a run's `actions` hash indexes no new action beyond this many fields


def lease_member(run: str, action: str) -> str:
    """An action's member in the `leases` sorted set."""
    return f"{run}:{action}"


class Keys:
    """Key names under one prefix, and their TTLs from the retention settings."""

    def __init__(self, prefix: str, retention: RetentionSettings | None = None) -> None:
        retention = retention or RetentionSettings()
        self.prefix = prefix
        self.result_ttl_s = retention.results_s
        self.run_ttl_s = retention.runs_s
        self.dead_letters_max = retention.dead_letters
        self.dead_letters_ttl_s = retention.dead_letters_s

    def _of_run(self, run: str, rest: str) -> str:
        return f"{self.prefix}{{{run}}}:{rest}"

    def run(self, run: str) -> str:
        return self._of_run(run, "run")

    def result(self, run: str, action: str) -> str:
        return self._of_run(run, f"result:{action}")

    def waiters(self, run: str, action: str) -> str:
        return self._of_run(run, f"waiters:{action}")

    def enqueued(self, run: str, action: str) -> str:
        return self._of_run(run, f"enqueued:{action}")

    def message(self, run: str, action: str) -> str:
        return self._of_run(run, f"message:{action}")

    def logs(self, run: str, action: str) -> str:
        return self._of_run(run, f"logs:{action}")

    def aborted(self, run: str) -> str:
        return self._of_run(run, "aborted")

    def actions(self, run: str) -> str:
        return self._of_run(run, "actions")

    def bundle(self, digest: str) -> str:
        return f"{self.prefix}bundle:{digest}"

    @property
    def runs(self) -> str:
        return f"{self.prefix}runs"

    @property
    def leases(self) -> str:
        return f"{self.prefix}leases"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}dead-letters"

    @property
    def signing_keys(self) -> str:
        return f"{self.prefix}signing-keys"

    @property
    def abort_channel(self) -> str:
        return f"{self.prefix}abort"

    def reply_channel(self, process_id: str) -> str:
        return f"{self.prefix}reply:{process_id}"
