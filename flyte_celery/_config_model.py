"""The typed settings: one frozen pydantic model per config file section, with the defaults.

`config.example.yaml` at the repository root lists every key of these models with its default; tests keep the two
equal. Loading files and environment variables lives in `_config_loader`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from flyte_celery._logging import DEFAULT_LOG_LEVEL, LogFormat, parse_log_level
from flyte_celery._urls import redact

Mode = Literal["local", "remote", "hybrid"]
CacheLookupScope = Literal["global", "project-domain"]
CopyStyle = Literal["loaded_modules", "all", "none"]

# Our `local` section shares its name with Flyte's; Flyte's keys are accepted there and ignored.
FLYTE_LOCAL_KEYS = frozenset({"persistence", "tracked", "tracked_strict"})
REDIS_URL_SCHEMES = ("redis://", "rediss://", "unix://")
HOME_DIR_NAME = ".flyte-celery"
LOCAL_CACHE_RELATIVE_PATH = Path("local-cache") / "cache.db"
TEMP_DIR_NAME = "flyte-celery"
DAY_S = 24 * 3600
MIN_CAPTURE_BYTES = 1024


class _Section(BaseModel):
    # Numbers are accepted where text is expected, so `project: 123` (or FLYTE_CELERY_RUN_PROJECT=123) means "123".
    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)


class RunSettings(_Section):
    """Defaults for `with_runcontext(...)` parameters not given in code."""

    mode: Mode = "local"
    project: Optional[str] = None
    domain: Optional[str] = None
    org: Optional[str] = None
    queue: str = Field(default="flyte-celery", min_length=1)
    raw_data_path: Optional[str] = None
    run_base_dir: Optional[str] = None
    service_account: Optional[str] = None
    cache_lookup_scope: CacheLookupScope = "global"
    max_action_concurrency: Optional[int] = None
    copy_style: CopyStyle = "loaded_modules"
    interruptible: Optional[bool] = None

    @field_validator("max_action_concurrency")
    @classmethod
    def _check_concurrency(cls, value: int | None) -> int | None:
        # Same rule as Flyte: a limit of 1 deadlocks because a waiting parent holds the only slot.
        if value is not None and (value < 0 or value == 1):
            raise ValueError("must be 0 or at least 2 (1 deadlocks: a waiting parent holds the only slot)")
        return value

    def raw_data_path_resolved(self) -> str:
        """The raw data prefix: `raw_data_path`, else `<tempdir>/flyte-celery/raw_data` (run name not appended)."""
        return self.raw_data_path or str(Path(tempfile.gettempdir()) / TEMP_DIR_NAME / "raw_data")

    def run_base_dir_resolved(self) -> str:
        """The metadata prefix: `run_base_dir`, else `<tempdir>/flyte-celery/metadata` (run name not appended)."""
        return self.run_base_dir or str(Path(tempfile.gettempdir()) / TEMP_DIR_NAME / "metadata")


class LogSettings(_Section):
    """Logging of the framework (`flyte_celery`) logger; `level` is stored as a number."""

    level: int = DEFAULT_LOG_LEVEL
    format: LogFormat = "console"
    reset_root_logger: bool = False
    # Bytes of each action's output kept in Redis for `flyte-celery logs` (its first and last lines); 0: none.
    capture_max_bytes: int = Field(default=64 * 1024, ge=0)

    @field_validator("capture_max_bytes")
    @classmethod
    def _check_capture(cls, value: int) -> int:
        if 0 < value < MIN_CAPTURE_BYTES:
            raise ValueError(f"must be 0 (no capture) or at least {MIN_CAPTURE_BYTES}")
        return value

    @field_validator("level", mode="before")
    @classmethod
    def _parse_level(cls, value: Any) -> Any:
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            return parse_log_level(value)
        return value


class LocalSettings(_Section):
    """Local-mode settings."""

    cache_path: Optional[str] = None

    @model_validator(mode="before")
    @classmethod
    def _drop_flyte_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if key not in FLYTE_LOCAL_KEYS}
        return data


class BrokerSettings(_Section):
    """The Celery broker."""

    url: str = Field(default="redis://127.0.0.1:6379/0", min_length=1)


class RedisSettings(_Section):
    """The Redis server holding results, cache entries and run records."""

    url: Optional[str] = None
    key_prefix: str = Field(default="flyte_celery:", min_length=1)


class SecuritySettings(_Section):
    """Keys that seal what crosses Redis, the broker and caches; `SecretStr`s, so they never show in reprs or logs."""

    signing_key: Optional[SecretStr] = None
    accepted_keys: list[SecretStr] = Field(default_factory=list)

    @field_validator("accepted_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        # From an environment variable the list is one comma-separated string; an empty one means none.
        if value is None:
            return []
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class RetentionSettings(_Section):
    """How long Redis keeps what runs leave behind (every key has a TTL; see `_celery/keys.py`)."""

    results_s: int = Field(default=7 * DAY_S, ge=60)
    runs_s: int = Field(default=30 * DAY_S, ge=60)
    dead_letters: int = Field(default=1000, ge=0)
    dead_letters_s: int = Field(default=7 * DAY_S, ge=60)


class CacheSettings(_Section):
    """Bounds of the task output cache (Redis in the Celery modes, SQLite in local mode)."""

    max_age_s: Optional[int] = Field(default=30 * DAY_S, ge=1)
    max_entry_bytes: Optional[int] = Field(default=64 * 1024 * 1024, ge=0)


class FlowerSettings(_Section):
    """Where Flower runs, for `Run.url`."""

    url: Optional[str] = None


class WorkerSettings(_Section):
    """Defaults for `flyte-celery worker`, and how much a pool process hosts."""

    concurrency: Optional[int] = Field(default=None, ge=1)
    max_hosted_actions: int = Field(default=500, ge=1)


# Keys of a Flyte (flytectl) config's `storage` section; accepted there and ignored, as in `local`.
FLYTE_STORAGE_KEYS = frozenset(
    {"type", "connection", "container", "enable-multicontainer", "limits", "cache", "defaultHttpClient", "stow"}
)


class StorageSettings(_Section):
    """Object storage (fsspec URLs such as `s3://bucket/prefix`) for files, directories and data frames.

    Unset keys leave the standard variables in effect (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
    `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, profiles): botocore reads them when we pass nothing.
    The timeouts and attempts bound every S3 request, so an unreachable endpoint fails instead of hanging.
    """

    endpoint_url: Optional[str] = None
    access_key_id: Optional[SecretStr] = None
    secret_access_key: Optional[SecretStr] = None
    region: Optional[str] = None
    anonymous: bool = False
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    inline_max_bytes: int = Field(default=4096, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _drop_flyte_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if key not in FLYTE_STORAGE_KEYS}
        return data


class Settings(BaseModel):
    """All flyte-celery settings, from defaults, a config file and `FLYTE_CELERY_*` environment variables.

    Attributes:
        celery: Any Celery setting, passed to `app.conf` as is. Treat it as read-only.
        source: The config file these settings were read from, or None.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    run: RunSettings = RunSettings()
    log: LogSettings = LogSettings()
    local: LocalSettings = LocalSettings()
    broker: BrokerSettings = BrokerSettings()
    redis: RedisSettings = RedisSettings()
    security: SecuritySettings = SecuritySettings()
    retention: RetentionSettings = RetentionSettings()
    cache: CacheSettings = CacheSettings()
    flower: FlowerSettings = FlowerSettings()
    worker: WorkerSettings = WorkerSettings()
    storage: StorageSettings = StorageSettings()
    celery: dict[str, Any] = Field(default_factory=dict)
    source: Optional[Path] = None

    def redis_url_resolved(self) -> str:
        """The Redis URL for results, cache and run records: `redis.url`, else a Redis broker URL.

        Raises:
            ConfigError: If `redis.url` is not set and the broker is not Redis (e.g. AMQP).
        """
        if self.redis.url:
            return self.redis.url
        if self.broker.url.startswith(REDIS_URL_SCHEMES):
            return self.broker.url
        from flyte_celery.errors import ConfigError

        where = f" (config file: {self.source})" if self.source else ""
        raise ConfigError(
            f"redis.url is required when the broker is not Redis: broker.url is {redact(self.broker.url)!r}"
            f"{where}. Set redis.url (or FLYTE_CELERY_REDIS_URL) to a redis://, rediss:// or unix:// URL.",
            key="redis.url",
        )

    def local_cache_path_resolved(self) -> Path:
        """The SQLite file of the local cache.

        `local.cache_path` if set (a relative path is taken from the config file's directory), else
        `<config file dir>/local-cache/cache.db`, else `~/.flyte-celery/local-cache/cache.db`.
        """
        base = self.source.parent if self.source is not None else None
        if self.local.cache_path:
            path = Path(self.local.cache_path).expanduser()
            return path if path.is_absolute() or base is None else base / path
        if base is not None:
            return base / LOCAL_CACHE_RELATIVE_PATH
        return Path.home() / HOME_DIR_NAME / LOCAL_CACHE_RELATIVE_PATH
