"""Finding the config file, reading it and `FLYTE_CELERY_*` environment variables into `Settings`.

Precedence, per key: environment variable > config file > model default. A Flyte `config.yaml` is a valid config
file: Flyte's own sections are accepted (`task.project/domain/org` serve as fallbacks for `run.*`), any other unknown
section only warns.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, SecretStr, ValidationError

from flyte_celery._config_model import HOME_DIR_NAME, Settings

CONFIG_ENV_VAR = "FLYTE_CELERY_CONFIG"
ENV_PREFIX = "FLYTE_CELERY_"
CONFIG_FILE_NAME = "config.yaml"
# Sections of a Flyte config file (`local` is also ours); see flyte/config/_internal.py.
FLYTE_SECTIONS = frozenset({"admin", "console", "task", "image", "local", "storage", "platform", "logger"})
FLYTE_TASK_FALLBACK_KEYS = ("project", "domain", "org")
FREE_FORM_SECTION = "celery"
SECTION_MODELS: dict[str, type[BaseModel]] = {
    name: field.annotation
    for name, field in Settings.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
}
SECTION_NAMES = frozenset({*SECTION_MODELS, FREE_FORM_SECTION})
_TEXT_TYPES = (str, SecretStr)
_SECRET_SECTIONS = frozenset({"security", "storage"})

_current_settings: Settings | None = None


def get_settings() -> Settings:
    """The settings of this process: those given to `set_settings`, else the model defaults."""
    return _current_settings if _current_settings is not None else _DEFAULT_SETTINGS


def set_settings(settings: Settings) -> None:
    """Makes `settings` the settings of this process (see `get_settings`)."""
    global _current_settings
    _current_settings = settings


def find_config_file(explicit: str | Path | None = None, *, environ: Mapping[str, str] | None = None) -> Path | None:
    """Finds the config file to use.

    Order: `explicit`, then `$FLYTE_CELERY_CONFIG` (both must exist), then the first existing of `./config.yaml`,
    `./.flyte-celery/config.yaml`, `<git root>/.flyte-celery/config.yaml`, `~/.flyte-celery/config.yaml`.

    Args:
        explicit: A path given in code or on the command line.
        environ: The environment to read; defaults to `os.environ`.

    Returns:
        The absolute path of the file, or None when there is none (all defaults apply).

    Raises:
        InitializationError: If `explicit` or `$FLYTE_CELERY_CONFIG` names a file that does not exist.
    """
    env = os.environ if environ is None else environ
    if explicit is not None:
        return _existing_file(Path(explicit), "given explicitly")
    from_env = env.get(CONFIG_ENV_VAR)
    if from_env:
        return _existing_file(Path(from_env), f"from ${CONFIG_ENV_VAR}")
    cwd = Path.cwd()
    candidates = [cwd / CONFIG_FILE_NAME, cwd / HOME_DIR_NAME / CONFIG_FILE_NAME]
    git_root = _find_git_root(cwd)
    if git_root is not None:
        candidates.append(git_root / HOME_DIR_NAME / CONFIG_FILE_NAME)
    candidates.append(Path.home() / HOME_DIR_NAME / CONFIG_FILE_NAME)
    return next((path.resolve() for path in candidates if path.is_file()), None)


def load_settings(
    path: str | Path | None = None, *, environ: Mapping[str, str] | None = None, discover: bool = True
) -> Settings:
    """Builds the settings from the config file (see `find_config_file`), environment variables and defaults.

    Every key `<section>.<key>` can be overridden by `FLYTE_CELERY_<SECTION>_<KEY>`, parsed as a YAML scalar
    ("null", "true", "3"); text keys keep the value verbatim unless it is a YAML null. `FLYTE_CELERY_CELERY_<NAME>`
    sets the Celery setting `<name>` (lower-cased).

    Args:
        path: An explicit config file, which must exist.
        environ: The environment to read; defaults to `os.environ`.
        discover: False reads no config file at all (only an explicit `path`), just the environment.

    Returns:
        The validated settings; `Settings.source` is the file used, or None.

    Raises:
        InitializationError: If the explicit file (or `$FLYTE_CELERY_CONFIG`) does not exist.
        ConfigError: If the file cannot be parsed, or a key is unknown or has a bad value.
    """
    env = os.environ if environ is None else environ
    source = find_config_file(path, environ=env) if discover or path is not None else None
    raw: dict[str, Any] = {}
    origins: dict[str, str] = {}
    flyte_task: Mapping[str, Any] = {}
    if source is not None:
        raw, flyte_task = _split_document(_read_yaml(source), source)
        for section, values in raw.items():
            origins[section] = f"config file {source}"
            if isinstance(values, dict):
                origins.update({f"{section}.{key}": f"config file {source}" for key in values})
    _apply_env(raw, origins, env)
    run = raw.setdefault("run", {})
    if isinstance(run, dict):
        for key in FLYTE_TASK_FALLBACK_KEYS:
            if run.get(key) is None and flyte_task.get(key) is not None:
                run[key] = flyte_task[key]
                origins[f"run.{key}"] = f"config file {source} (Flyte's task.{key})"
    try:
        return Settings.model_validate({**raw, "source": source})
    except ValidationError as exc:
        raise _config_error(exc, origins) from None


def _existing_file(path: Path, how: str) -> Path:
    resolved = path.expanduser().resolve()
    if not resolved.is_file():
        from flyte_celery.errors import InitializationError

        raise InitializationError(
            "ConfigFileNotFoundError",
            "user",
            f"Config file {str(path)!r} ({how}) does not exist or is not a file; working directory is {Path.cwd()}",
        )
    return resolved


def _find_git_root(start: Path) -> Path | None:
    return next((folder for folder in (start, *start.parents) if (folder / ".git").exists()), None)


def _read_yaml(path: Path) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with path.open(encoding="utf-8") as stream:
            return yaml.load(stream, Loader=loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        from flyte_celery.errors import ConfigError

        raise ConfigError(f"Cannot read config file {path}: {exc}") from None


def _split_document(document: Any, source: Path) -> tuple[dict[str, Any], Mapping[str, Any]]:
    """Our sections (empty ones as {}) and Flyte's `task` section; warns about unknown sections."""
    if document is None:
        return {}, {}
    if not isinstance(document, dict):
        from flyte_celery.errors import ConfigError

        raise ConfigError(f"Config file {source} must be a mapping of sections, not {type(document).__name__}")
    ours: dict[str, Any] = {}
    for name, value in document.items():
        if name in SECTION_NAMES:
            ours[name] = {} if value is None else value
        elif name not in FLYTE_SECTIONS:
            known = ", ".join(sorted(SECTION_NAMES))
            warnings.warn(
                f"Unknown section {name!r} in config file {source} is ignored (flyte-celery sections: {known})",
                UserWarning,
                stacklevel=3,
            )
    task = document.get("task")
    return ours, task if isinstance(task, dict) else {}


def _apply_env(raw: dict[str, Any], origins: dict[str, str], env: Mapping[str, str]) -> None:
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX):
            continue
        section_name, _, key_name = name[len(ENV_PREFIX) :].partition("_")
        section, key = section_name.lower(), key_name.lower()
        if section not in SECTION_NAMES or not key:
            continue  # e.g. FLYTE_CELERY_CONFIG, or variables of other tools sharing the prefix
        values = raw.setdefault(section, {})
        if not isinstance(values, dict):
            continue  # the file's section is malformed; validation reports it
        model = SECTION_MODELS.get(section)
        text_field = model is not None and _is_text_field(model, key)
        values[key] = _parse_env_value(env[name], text_field=text_field, free_form=model is None)
        origins[f"{section}.{key}"] = f"environment variable {name}"


def _is_text_field(model: type[BaseModel], key: str) -> bool:
    field = model.model_fields.get(key)
    if field is None:
        return False
    return field.annotation in _TEXT_TYPES or any(arg in _TEXT_TYPES for arg in get_args(field.annotation))


def _parse_env_value(raw_value: str, *, text_field: bool, free_form: bool) -> Any:
    import yaml

    try:
        value = yaml.safe_load(raw_value)
    except yaml.YAMLError:
        return raw_value
    if text_field:
        # Secrets and names are taken verbatim: YAML would cut "a #b" at the comment or read "0x1F" as 31.
        return None if value is None else raw_value
    if free_form or not isinstance(value, (dict, list)):
        return value
    return raw_value


def _config_error(exc: ValidationError, origins: Mapping[str, str]) -> Exception:
    from flyte_celery.errors import ConfigError

    lines: list[str] = []
    keys: list[str] = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        key = ".".join(loc[:2])
        keys.append(key)
        origin = origins.get(key) or origins.get(loc[0], "settings")
        if error["type"] == "extra_forbidden" and len(loc) == 2 and loc[0] in SECTION_MODELS:
            accepted = ", ".join(SECTION_MODELS[loc[0]].model_fields)
            lines.append(f"unknown key {key!r} in {origin}; accepted keys of section {loc[0]!r}: {accepted}")
            continue
        message = error["msg"].removeprefix("Value error, ")
        shown = "<hidden>" if loc[0] in _SECRET_SECTIONS else repr(error.get("input"))
        lines.append(f"invalid value {shown} for {key!r} from {origin}: {message}")
    header = "Invalid flyte-celery configuration:"
    summary = f"{header} {lines[0]}" if len(lines) == 1 else "\n  - ".join([header, *lines])
    return ConfigError(summary, key=keys[0] if keys else None)


_DEFAULT_SETTINGS = Settings()
