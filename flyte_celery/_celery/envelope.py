"""The wire message: one versioned, validated context envelope carried as JSON text in a namespaced Celery header.

The envelope says who the action is (run, action, parent), what to run (bundle digest and task name) and the
whole propagated run context. Inputs travel separately in the message body; one MAC covers the envelope's exact
text and the inputs (see `message`). Decoding turns any problem into one `MessageDecodeError` naming the field;
optional fields added later default, so older messages of the same schema version still decode.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flyte_celery._context import ActionID, GroupData, Mode, RawDataPath, TaskContext
from flyte_celery._run_spec import RunSpec
from flyte_celery.errors import MessageDecodeError

HEADER: Final = "flyte_celery"
SCHEMA_VERSION: Final = 2
MAX_ENVELOPE_CHARS: Final = 256 * 1024


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class RunContextMessage(_Model):
    """The run-level context, the same for every action of a run."""

    name: str = Field(min_length=1)
    mode: Mode = "remote"
    project: str | None = None
    domain: str | None = None
    org: str | None = None
    version: str | None = None
    queue: str | None = None
    default_queue: str = "flyte-celery"
    interruptible: bool | None = None
    raw_data_path: str = ""
    run_base_dir: str = ""
    overwrite_cache: bool = False
    disable_run_cache: bool = False
    cache_lookup_scope: Literal["global", "project-domain"] = "global"
    service_account: str | None = None
    env_vars: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    log_level: int | None = None
    user_log_level: int | None = None
    log_format: Literal["console", "json"] | None = None
    reset_root_logger: bool = False
    max_action_concurrency: int | None = None
    run_start_time: datetime | None = None
    interactive_mode: bool = False
    preserve_original_types: bool = False

    @classmethod
    def from_spec(cls, spec: RunSpec) -> RunContextMessage:
        fields = {name: getattr(spec, name) for name in cls.model_fields}
        return cls(**fields)

    def to_spec(self) -> RunSpec:
        return RunSpec(**self.model_dump())


class ActionMessage(_Model):
    """One action: its identity, what to run and the caller's effective context at the call site."""

    name: str = Field(min_length=1)
    parent: str | None = None
    task: str = Field(min_length=1)
    bundle: str = Field(min_length=1)
    version: str = ""
    group: str | None = None
    custom_context: dict[str, str] = Field(default_factory=dict)
    cache_key: str | None = None
    read_cache: bool = True
    output_path: str = ""
    queue: str = Field(min_length=1)
    queued_at: float | None = None
    replay: bool = False
    inputs_url: str | None = None  # where the inputs are, when they were too big to travel in the message


class Envelope(_Model):
    """The `flyte_celery` header: schema version, run context, action."""

    v: Literal[2] = SCHEMA_VERSION
    run: RunContextMessage
    action: ActionMessage

    @property
    def task_id(self) -> str:
        return celery_task_id(self.run.name, self.action.name)

    def task_context(self, mode: Mode, attempt: int = 0) -> TaskContext:
        """The `TaskContext` the action runs with on a worker, equal to what local mode builds."""
        run = self.run
        action = ActionID(name=self.action.name, run_name=run.name, project=run.project, domain=run.domain, org=run.org)
        return TaskContext(
            action=action,
            mode=mode,
            version=self.action.version,
            raw_data_path=RawDataPath(run.raw_data_path),
            run_base_dir=run.run_base_dir,
            output_path=self.action.output_path,
            custom_context=dict(self.action.custom_context),
            disable_run_cache=run.disable_run_cache,
            run_start_time=run.run_start_time,
            attempt_number=attempt,
            group_data=None,
            interactive_mode=run.interactive_mode,
        )

    def encode(self) -> str:
        """The envelope as compact JSON text: what travels, and exactly what the message's MAC covers."""
        encoded: dict[str, Any] = self.model_dump(mode="json", exclude_defaults=True)
        encoded["v"] = SCHEMA_VERSION  # always written: a later worker must be able to tell this version apart
        return json.dumps(encoded, separators=(",", ":"), ensure_ascii=False)


def celery_task_id(run: str, action: str) -> str:
    return f"{run}-{action}"


def decode_envelope(text: object) -> Envelope:
    """Parse and validate a header value (the envelope's JSON text).

    Raises:
        MessageDecodeError: Naming the first bad field (and keeping the raw value), for anything but a valid
            envelope of a schema version this code knows.
    """
    raw = _parsed(text)
    if not isinstance(raw, dict):
        raise MessageDecodeError(f"header {HEADER!r} is not a JSON object", field=HEADER, raw=_raw(text))
    version = raw.get("v", SCHEMA_VERSION)
    if type(version) is not int or version != SCHEMA_VERSION:
        raise MessageDecodeError(
            f"unknown envelope schema version {version!r} (this worker knows {SCHEMA_VERSION}): upgrade the worker",
            field="v",
            raw=_raw(raw),
        )
    try:
        return Envelope.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise MessageDecodeError(f"bad field {where!r}: {first['msg']}", field=where, raw=_raw(raw)) from None


def claimed_identity(text: str) -> tuple[str, str] | None:
    """(run, action) that an envelope's text names, whatever its schema version; None if it names none."""
    try:
        raw = json.loads(text)
        run, action = raw["run"]["name"], raw["action"]["name"]
    except (ValueError, TypeError, KeyError):
        return None
    return (run, action) if isinstance(run, str) and isinstance(action, str) and run and action else None


def _parsed(text: object) -> object:
    if not isinstance(text, str):
        raise MessageDecodeError(
            f"header {HEADER!r} is missing or not text ({type(text).__name__})", field=HEADER, raw=_raw(text)
        )
    if len(text) > MAX_ENVELOPE_CHARS:
        raise MessageDecodeError(f"header {HEADER!r} is over {MAX_ENVELOPE_CHARS} characters", field=HEADER)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise MessageDecodeError(f"header {HEADER!r} is not JSON: {exc}", field=HEADER, raw=_raw(text)) from None


def _raw(value: object) -> bytes:
    return repr(value).encode("utf-8", "replace")[:4096]


def group_of(envelope: Envelope) -> GroupData | None:
    return GroupData(envelope.action.group) if envelope.action.group else None
