"""The write side of the run context: `with_runcontext(...)` parameters, validated, then resolved to a `RunSpec`.

Resolution order for every parameter: the value given in code, else the config file (or its environment
override), else the default. `UNSET` marks "not given", so an explicit `None` or `False` is never mistaken for it.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final, get_args

from flyte_celery._config_model import CopyStyle, Settings
from flyte_celery._context import MODES, Mode
from flyte_celery._logging import LOG_FORMATS, parse_log_level
from flyte_celery._run_spec import CacheLookupScope, RunSpec
from flyte_celery.errors import RunOptionError


class _Unset:
    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = _Unset()
RUN_NAME_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
GENERATED_RUN_NAME_LENGTH: Final = 20
_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz0123456789"
COPY_STYLES: Final = get_args(CopyStyle)
CACHE_LOOKUP_SCOPES: Final = get_args(CacheLookupScope)


def new_run_name() -> str:
    """A fresh run name like Flyte's: "r" then 19 random lowercase letters and digits."""
    return "r" + "".join(secrets.choice(_ALPHABET) for _ in range(GENERATED_RUN_NAME_LENGTH - 1))


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """Every `with_runcontext` parameter; `UNSET` means "inherit from config, then default"."""

    mode: Any = UNSET
    name: Any = UNSET
    project: Any = UNSET
    domain: Any = UNSET
    org: Any = UNSET
    version: Any = UNSET
    queue: Any = UNSET
    interruptible: Any = UNSET
    raw_data_path: Any = UNSET
    run_base_dir: Any = UNSET
    overwrite_cache: Any = UNSET
    disable_run_cache: Any = UNSET
    cache_lookup_scope: Any = UNSET
    service_account: Any = UNSET
    env_vars: Any = UNSET
    labels: Any = UNSET
    annotations: Any = UNSET
    log_level: Any = UNSET
    user_log_level: Any = UNSET
    log_format: Any = UNSET
    reset_root_logger: Any = UNSET
    copy_style: Any = UNSET
    dry_run: Any = UNSET
    copy_bundle_to: Any = UNSET
    interactive_mode: Any = UNSET
    preserve_original_types: Any = UNSET
    custom_context: Any = UNSET
    run_start_time: Any = UNSET
    max_action_concurrency: Any = UNSET
    notifications: Any = UNSET
    debug: Any = UNSET
    tracked: Any = UNSET
    tracked_strict: Any = UNSET

    def __post_init__(self) -> None:
        _validate(self)

    def given(self) -> dict[str, Any]:
        """The parameters given explicitly (not UNSET)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not UNSET}

    def resolve(self, settings: Settings, *, extra_custom_context: Mapping[str, str] | None = None) -> RunSpec:
        """The run's `RunSpec`: these options over `settings`, over the defaults; a run name is generated if none."""
        run = settings.run
        name = self.name or new_run_name()
        mode: Mode = self.mode or run.mode
        raw = self.raw_data_path or _join(run.raw_data_path_resolved(), name)
        base = self.run_base_dir or _join(run.run_base_dir_resolved(), name)
        log_level = parse_log_level(self.log_level) if self.log_level is not UNSET else None
        start = self.run_start_time or datetime.now(timezone.utc)
        if start.tzinfo is None:
            start = start.replace(tzinfo=timezone.utc)
        # An explicit run option wins over an enclosing `custom_context()` block.
        custom = {**(extra_custom_context or {}), **(self.custom_context or {})}
        copy_style = _pick(self.copy_style, run.copy_style)
        if copy_style == "none" and not self.version:
            raise RunOptionError("copy_style", 'copy_style="none" (from the config) needs an explicit version=')
        return RunSpec(
            name=name,
            mode=mode,
            project=_pick(self.project, run.project),
            domain=_pick(self.domain, run.domain),
            org=_pick(self.org, run.org),
            version=self.version or None,
            queue=self.queue or None,
            default_queue=run.queue,
            interruptible=_pick(self.interruptible, run.interruptible),
            raw_data_path=raw,
            run_base_dir=base,
            overwrite_cache=bool(self.overwrite_cache),
            disable_run_cache=bool(self.disable_run_cache),
            cache_lookup_scope=_pick(self.cache_lookup_scope, run.cache_lookup_scope),
            service_account=_pick(self.service_account, run.service_account),
            env_vars=dict(self.env_vars or {}),
            labels=dict(self.labels or {}),
            annotations=dict(self.annotations or {}),
            log_level=log_level,
            user_log_level=parse_log_level(self.user_log_level) if self.user_log_level is not UNSET else None,
            log_format=self.log_format or None,
            reset_root_logger=_pick(self.reset_root_logger, settings.log.reset_root_logger),
            max_action_concurrency=_pick(self.max_action_concurrency, run.max_action_concurrency),
            custom_context=custom,
            run_start_time=start,
            interactive_mode=bool(self.interactive_mode) if self.interactive_mode is not UNSET else _in_notebook(),
            preserve_original_types=bool(self.preserve_original_types),
            copy_style=copy_style,
        )


def _pick(given: Any, configured: Any) -> Any:
    return configured if given is UNSET or given is None else given


def _join(prefix: str, name: str) -> str:
    return f"{prefix.rstrip('/')}/{name}"


def _in_notebook() -> bool:
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _validate(options: RunOptions) -> None:
    o = options
    if o.mode not in (UNSET, None) and o.mode not in MODES:
        raise RunOptionError("mode", f"unknown mode {o.mode!r}: expected one of {', '.join(MODES)}")
    if o.name not in (UNSET, None) and not (isinstance(o.name, str) and RUN_NAME_PATTERN.match(o.name)):
        raise RunOptionError(
            "name", f"invalid run name {o.name!r}: use 1-100 letters, digits, '-', '_' or '.', starting alphanumeric"
        )
    for key in ("project", "domain", "org", "version", "queue", "service_account", "raw_data_path", "run_base_dir"):
        value = getattr(o, key)
        if value not in (UNSET, None) and not (isinstance(value, str) and value):
            raise RunOptionError(key, f"must be a non-empty string, got {value!r}")
    for key in (
        "interruptible",
        "overwrite_cache",
        "disable_run_cache",
        "reset_root_logger",
        "dry_run",
        "interactive_mode",
        "preserve_original_types",
        "debug",
        "tracked",
        "tracked_strict",
    ):
        value = getattr(o, key)
        if value not in (UNSET, None) and not isinstance(value, bool):
            raise RunOptionError(key, f"must be True or False, got {value!r}")
    for key in ("custom_context", "env_vars", "labels", "annotations"):
        _check_string_dict(key, getattr(o, key))
    if o.cache_lookup_scope not in (UNSET, None) and o.cache_lookup_scope not in CACHE_LOOKUP_SCOPES:
        raise RunOptionError(
            "cache_lookup_scope",
            f"unknown scope {o.cache_lookup_scope!r}: expected one of {', '.join(CACHE_LOOKUP_SCOPES)}",
        )
    if o.copy_style not in (UNSET, None) and o.copy_style not in COPY_STYLES:
        raise RunOptionError("copy_style", f"unknown copy style {o.copy_style!r}: expected one of {COPY_STYLES}")
    if o.copy_style == "none" and not o.version:
        raise RunOptionError("copy_style", 'copy_style="none" needs an explicit version=')
    if o.log_format not in (UNSET, None) and o.log_format not in LOG_FORMATS:
        raise RunOptionError("log_format", f"unknown log format {o.log_format!r}: expected one of {LOG_FORMATS}")
    for key in ("log_level", "user_log_level"):
        value = getattr(o, key)
        if value not in (UNSET, None):
            try:
                parse_log_level(value)
            except (ValueError, TypeError) as exc:
                raise RunOptionError(key, str(exc)) from None
    mac = o.max_action_concurrency
    if mac not in (UNSET, None) and (not isinstance(mac, int) or isinstance(mac, bool) or mac < 0 or mac == 1):
        raise RunOptionError(
            "max_action_concurrency", f"must be 0 or at least 2 (1 deadlocks: a waiting parent holds it), got {mac!r}"
        )
    if o.run_start_time not in (UNSET, None) and not isinstance(o.run_start_time, datetime):
        raise RunOptionError("run_start_time", f"must be a datetime, got {o.run_start_time!r}")
    if o.copy_bundle_to not in (UNSET, None) and not isinstance(o.copy_bundle_to, (str, Path)):
        raise RunOptionError("copy_bundle_to", f"must be a path, got {o.copy_bundle_to!r}")
    if o.tracked and o.mode not in (UNSET, None, "local"):
        raise RunOptionError("tracked", "tracked runs are local runs: use mode='local'")


def _check_string_dict(key: str, value: Any) -> None:
    if value in (UNSET, None):
        return
    if not isinstance(value, Mapping):
        raise RunOptionError(key, f"must be a dict of strings, got {type(value).__name__}")
    for k, v in value.items():
        if not isinstance(k, str) or not k:
            raise RunOptionError(key, f"keys must be non-empty strings, got {k!r}")
        if not isinstance(v, str):
            raise RunOptionError(key, f"value of {k!r} must be a string, got {type(v).__name__} {v!r}")
