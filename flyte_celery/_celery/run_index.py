"""The run index: the runs the cluster knows, newest first (`runs`, a sorted set of run names by creation time), and
what `Run.listall`, `flyte-celery runs` and `get` show of each: its record (`{<run>}:run`) and its root's entries
in the run's action index.

A launch adds the run in the round trip that writes its record (`index_run`), trims the index to
`retention.runs_s` and `MAX_INDEXED_RUNS`, and adds the root to the action index (started at once in a hybrid run,
whose root runs in its client). A listing drops the names whose record has expired.
"""

from __future__ import annotations

import json
from typing import Any, Final

from flyte_celery._celery.action_index import END_SUFFIX, START_SUFFIX, error_info, new_entry
from flyte_celery._celery.keys import MAX_INDEXED_RUNS, Keys
from flyte_celery._celery.reply_channel import text_of
from flyte_celery._context import ROOT_ACTION_NAME
from flyte_celery._run import ActionPhase
from flyte_celery._run_details import RunDetails, RunQuery, utc_time
from flyte_celery._run_spec import RunSpec

LIST_PAGE: Final = 200  # runs read per round trip while a listing looks for matches
ROOT_FIELDS: Final = (ROOT_ACTION_NAME + START_SUFFIX, ROOT_ACTION_NAME + END_SUFFIX)

Record = dict[bytes, bytes]  # a run record as HGETALL returns it


def index_run(pipe: Any, keys: Keys, spec: RunSpec, task_name: str, inputs: str, created_at: float) -> None:
    """Queue the writes that index a new run into `pipe` (the pipeline that writes its record)."""
    pipe.zadd(keys.runs, {spec.name: created_at})
    pipe.zremrangebyscore(keys.runs, "-inf", f"({created_at - keys.run_ttl_s}")
    pipe.zremrangebyrank(keys.runs, 0, -MAX_INDEXED_RUNS - 1)
    pipe.expire(keys.runs, keys.run_ttl_s)
    actions = keys.actions(spec.name)
    pipe.hset(actions, ROOT_ACTION_NAME, new_entry(task_name, inputs, created_at))
    if spec.mode == "hybrid":
        pipe.hset(actions, ROOT_FIELDS[0], created_at)
    pipe.expire(actions, keys.run_ttl_s)


def list_runs(client: Any, keys: Keys, query: RunQuery) -> list[tuple[str, Record, RunDetails]]:
    """The runs `query` admits, newest first: their names, records and details."""
    found: list[tuple[str, Record, RunDetails]] = []
    expired: list[bytes] = []
    start = 0
    page = LIST_PAGE if query.filtered else min(LIST_PAGE, query.limit)
    while len(found) < query.limit:
        names: list[bytes] = client.zrevrange(keys.runs, start, start + page - 1)
        if not names:
            break
        start += len(names)
        for raw_name, (record, root) in zip(names, _read(client, keys, [text_of(n) for n in names]), strict=True):
            if not record:
                expired.append(raw_name)
                continue
            details = details_of(text_of(raw_name), record, root)
            if query.admits(details):
                found.append((details.name, record, details))
                if len(found) == query.limit:
                    break
    if expired:
        client.zrem(keys.runs, *expired)
    return found


def read_run(client: Any, keys: Keys, name: str) -> tuple[Record, RunDetails] | None:
    """The record and details of run `name`, or None if it has no record."""
    ((record, root),) = _read(client, keys, [name])
    if not record:
        return None
    return record, details_of(name, record, root)


def _read(client: Any, keys: Keys, names: list[str]) -> list[tuple[Record, list[bytes | None]]]:
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(keys.run(name))
            pipe.hmget(keys.actions(name), list(ROOT_FIELDS))
        replies = pipe.execute()
    return list(zip(replies[::2], replies[1::2], strict=True))


def details_of(name: str, record: Record, root: list[bytes | None]) -> RunDetails:
    """A run's details from its record and its root's start and end entries."""
    started, ended = root
    end: dict[str, Any] = {}
    if ended is not None:
        try:
            end = json.loads(ended)
        except ValueError:
            end = {}
    phase = _phase(record, started is not None, end)
    return RunDetails(
        name=name,
        task_name=_field(record, "root_task"),
        phase=phase,
        mode=_field(record, "mode"),
        project=_field(record, "project"),
        domain=_field(record, "domain"),
        start_time=utc_time(_number(_field(record, "created_at"))),
        end_time=utc_time(_number(_field(record, "ended_at"))) if phase.is_terminal else None,
        error_info=error_info(end.get("error")) if isinstance(end, dict) else None,
        labels=_mapping(_field(record, "labels")),
        annotations=_mapping(_field(record, "annotations")),
        run_base_dir=_field(record, "run_base_dir"),
    )


def _phase(record: Record, started: bool, end: Any) -> ActionPhase:
    for value in (_field(record, "phase"), end.get("phase") if isinstance(end, dict) else None):
        if value:
            try:
                return ActionPhase(value)
            except ValueError:
                return ActionPhase.FAILED  # an end we cannot read is no success
    return ActionPhase.RUNNING if started else ActionPhase.QUEUED


def _field(record: Record, name: str) -> str:
    value = record.get(name.encode())
    return text_of(value) if value is not None else ""


def _number(text: str) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _mapping(text: str) -> dict[str, str]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
