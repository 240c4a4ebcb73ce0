"""The cluster's records of runs as `Run.get`, `Run.listall`, `Run.details` and `Run.actions` read them (the
`RunCatalog` of `_run`): the run index, the run records and the action indexes in Redis, one client per call."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from flyte_celery._celery.action_index import read_actions
from flyte_celery._celery.keys import Keys
from flyte_celery._celery.launcher import RemoteRunBackend
from flyte_celery._celery.reply_channel import text_of
from flyte_celery._celery.run_index import ROOT_FIELDS, Record, details_of, list_runs, read_run
from flyte_celery._config_model import Settings
from flyte_celery._init import current_settings
from flyte_celery._redis_connect import sync_client
from flyte_celery._run_details import Action, RunDetails, RunQuery
from flyte_celery._urls import redact
from flyte_celery.errors import RuntimeSystemError

T = TypeVar("T")


class ClusterCatalog:
    """The runs on the cluster `settings` name (by default, the configured one)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or current_settings()
        self.keys = Keys(self.settings.redis.key_prefix, self.settings.retention)

    def find(self, name: str) -> RemoteRunBackend | None:
        """A handle on run `name`, or None if the cluster has no record of it."""
        found = self._read(lambda client: read_run(client, self.keys, name))
        return None if found is None else self._backend(name, found[0])

    def list_runs(self, query: RunQuery) -> list[tuple[RemoteRunBackend, RunDetails]]:
        """The runs `query` admits, newest first, with their details."""
        rows = self._read(lambda client: list_runs(client, self.keys, query))
        return [(self._backend(name, record), details) for name, record, details in rows]

    def details(self, name: str) -> RunDetails | None:
        found = self._read(lambda client: read_run(client, self.keys, name))
        return None if found is None else found[1]

    def actions(self, name: str) -> list[Action] | None:
        """The actions of run `name` (None if it has no record)."""
        snapshot = self.snapshot(name)
        return None if snapshot is None else snapshot[1]

    def snapshot(self, name: str) -> tuple[RunDetails, list[Action]] | None:
        """The run's details and actions, read in one round trip (None if it has no record)."""

        def read(client: Any) -> tuple[RunDetails, list[Action]] | None:
            with client.pipeline(transaction=False) as pipe:
                pipe.hgetall(self.keys.run(name))
                pipe.hgetall(self.keys.actions(name))
                record, fields = pipe.execute()
            if not record:
                return None
            root = [fields.get(field.encode()) for field in ROOT_FIELDS]
            return details_of(name, record, root), read_actions(name, fields)

        return self._read(read)

    def _backend(self, name: str, record: Record) -> RemoteRunBackend:
        outputs = json.loads(record.get(b"outputs", b"[]"))
        base_dir = text_of(record.get(b"run_base_dir", b""))
        return RemoteRunBackend(name, self.settings, tuple(outputs), run_base_dir=base_dir)

    def _read(self, read: Callable[[Any], T]) -> T:
        url = self.settings.redis_url_resolved()
        client = sync_client(url)
        try:
            return read(client)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise RuntimeSystemError(
                "ConnectionError",
                f"cannot reach Redis at {redact(url)} to read the runs ({type(exc).__name__}: {exc}): check redis.url "
                "(FLYTE_CELERY_REDIS_URL) and that the server is up; local runs are known only to the process that "
                "ran them",
            ) from exc
        finally:
            client.close()
