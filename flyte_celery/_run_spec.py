"""`RunSpec`: the fully resolved, immutable settings of one run, shared by every action in it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from flyte_celery._config_model import CopyStyle
from flyte_celery._context import Mode

CacheLookupScope = Literal["global", "project-domain"]
LogFormat = Literal["console", "json"]


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """What `with_runcontext(...)` resolved to, after config and defaults: travels with every action of the run."""

    name: str
    mode: Mode
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
    cache_lookup_scope: CacheLookupScope = "global"
    service_account: str | None = None
    env_vars: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    log_level: int | None = None
    user_log_level: int | None = None
    log_format: LogFormat | None = None
    reset_root_logger: bool = False
    max_action_concurrency: int | None = None
    custom_context: Mapping[str, str] = field(default_factory=dict)
    run_start_time: datetime | None = None
    interactive_mode: bool = False
    preserve_original_types: bool = False
    copy_style: CopyStyle = "loaded_modules"
