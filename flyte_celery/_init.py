"""`init()` and `init_from_config()`: which settings this process uses (config file, environment, defaults)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flyte_celery import _config_loader
from flyte_celery._config_model import Settings
from flyte_celery._logging import configure_logging
from flyte_celery._syncify import syncify

_initialised = False
_root_dir: Path | None = None


def current_settings() -> Settings:
    """The settings set by `init*`; before any `init*` call, those discovered from config file and environment."""
    global _initialised
    if not _initialised:
        _config_loader.set_settings(_config_loader.load_settings())
        _initialised = True
    return _config_loader.get_settings()


def _install(settings: Settings, root_dir: str | Path | None) -> None:
    global _initialised, _root_dir
    _config_loader.set_settings(settings)
    _root_dir = Path(root_dir).resolve() if root_dir is not None else None
    _initialised = True


def root_dir() -> Path:
    """The directory `copy_style="all"` bundles: `init(root_dir=...)`, else the current directory."""
    return _root_dir or Path.cwd()


@syncify
async def init(
    org: str | None = None,
    project: str | None = None,
    domain: str | None = None,
    root_dir: str | Path | None = None,
    log_level: int | str | None = None,
    log_format: str | None = None,
    reset_root_logger: bool = False,
    user_log_level: int | str | None = None,
    **flyte_options: Any,
) -> None:
    """Set up this process: defaults and `FLYTE_CELERY_*` variables (no config file is read), with the given
    project, domain, org and logging.

    Flyte's remote options (endpoint, api_key, storage, images, ...) are accepted and ignored: the cluster is
    configured through `init_from_config` or `FLYTE_CELERY_*` variables.
    """
    settings = _config_loader.load_settings(discover=False)
    _install(_with_overrides(settings, org=org, project=project, domain=domain), root_dir)
    if log_level is not None or log_format is not None or reset_root_logger or user_log_level is not None:
        configure_logging(log_level, log_format or "console", reset_root_logger, user_level=user_log_level)  # type: ignore[arg-type]


@syncify
async def init_from_config(
    path_or_config: str | Path | None = None,
    root_dir: str | Path | None = None,
    log_level: int | str | None = None,
    log_format: str | None = None,
    reset_root_logger: bool = False,
    user_log_level: int | str | None = None,
    org: str | None = None,
    project: str | None = None,
    domain: str | None = None,
    **flyte_options: Any,
) -> None:
    """Read the config file (explicit path, `$FLYTE_CELERY_CONFIG`, then the usual places) and environment overrides.

    No file at all means local mode with defaults.

    Raises:
        InitializationError: If an explicit path (or `$FLYTE_CELERY_CONFIG`) does not exist.
        ConfigError: If the file has an unknown key or a bad value.
    """
    path = path_or_config
    if path is not None and root_dir is not None and not Path(path).is_absolute():
        path = Path(root_dir) / path
    settings = _config_loader.load_settings(path)
    _install(_with_overrides(settings, org=org, project=project, domain=domain), root_dir)
    level = log_level if log_level is not None else settings.log.level
    fmt = log_format or settings.log.format
    configure_logging(level, fmt, reset_root_logger or settings.log.reset_root_logger, user_level=user_log_level)  # type: ignore[arg-type]


def _with_overrides(settings: Settings, **run_values: str | None) -> Settings:
    given = {key: value for key, value in run_values.items() if value is not None}
    if not given:
        return settings
    return settings.model_copy(update={"run": settings.run.model_copy(update=given)})


def current_project() -> str:
    """The project of the running task, else of the settings.

    Raises:
        InitializationError: If no project is known.
    """
    return _current("project")


def current_domain() -> str:
    """The domain of the running task, else of the settings.

    Raises:
        InitializationError: If no domain is known.
    """
    return _current("domain")


def _current(key: str) -> str:
    from flyte_celery._context import ctx
    from flyte_celery.errors import InitializationError

    task = ctx()
    value = getattr(task.action, key) if task is not None else None
    value = value or getattr(current_settings().run, key)
    if not value:
        raise InitializationError("NotInitialized", "user", f"no {key} is set: pass {key}= to init() or the run")
    return str(value)
