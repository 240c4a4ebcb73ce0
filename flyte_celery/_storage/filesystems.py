"""One fsspec filesystem per protocol and options, configured from the `storage:` settings.

Only S3 takes settings: each one that is set is passed to s3fs explicitly (so it wins over the environment), and
each one that is not is left out (so botocore's own chain applies: `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, profiles, instance roles). Other protocols use their library's defaults.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from typing import TYPE_CHECKING, Any, Final

import fsspec

from flyte_celery._init import current_settings
from flyte_celery._storage.errors import StorageError
from flyte_celery._storage.urls import LOCAL_PROTOCOLS, protocol_of

if TYPE_CHECKING:
    from flyte_celery._config_model import Settings, StorageSettings

S3_PROTOCOLS: Final = frozenset({"s3", "s3a"})
# The pip extra that brings each protocol's fsspec implementation.
EXTRAS: Final = {"gs": "gcs", "gcs": "gcs", "abfs": "azure", "abfss": "azure", "az": "azure", "adl": "azure"}
# s3fs retries timeouts and broken downloads on top of botocore's own attempts; two keeps one resume of a download
# cut mid-stream while bounding a request at 2 x max_attempts x (connect + read timeout).
S3FS_ATTEMPTS: Final = 2
# What botocore reads when an option is not passed: a change must give a new filesystem, not a stale cached client.
AWS_ENV_VARS: Final = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
)

_lock = threading.Lock()
_cache: dict[tuple[str, str], fsspec.AbstractFileSystem] = {}
_cache_pid = os.getpid()


def filesystem(url: str, settings: Settings | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem for `url` and the path to give it (`s3://b/k` -> `b/k`; local paths made absolute).

    Filesystems are cached per process, protocol and options (the environment botocore reads included).

    Args:
        url: An fsspec URL or a local path.
        settings: Defaults to the current settings (`init*`, config file, environment).

    Raises:
        StorageError: If the protocol is unknown, or its implementation is not installed (naming the pip extra).
    """
    global _cache_pid
    protocol = protocol_of(url)
    options = _options(protocol, (settings or current_settings()).storage)
    key = (protocol, _token(protocol, options))
    with _lock:
        if _cache_pid != os.getpid():
            # A forked child must not share its parent's connections; it builds its own.
            _cache.clear()
            _cache_pid = os.getpid()
        fs = _cache.get(key)
        if fs is None:
            fs = _cache[key] = _create(url, protocol, options)
    return fs, str(fs._strip_protocol(url))


def _options(protocol: str, storage: StorageSettings) -> dict[str, Any]:
    # Our cache is the only one: fsspec's would hand back instances configured for other settings.
    options: dict[str, Any] = {"skip_instance_cache": True}
    if protocol in LOCAL_PROTOCOLS:
        options["auto_mkdir"] = True
    elif protocol in S3_PROTOCOLS:
        options.update(_s3_options(storage))
    return options


def _s3_options(storage: StorageSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        # Another process may have written since we last listed: never answer from a stale listing.
        "use_listings_cache": False,
        "config_kwargs": {
            "connect_timeout": storage.connect_timeout_s,
            "read_timeout": storage.read_timeout_s,
            "retries": {"max_attempts": storage.max_attempts, "mode": "standard"},
        },
    }
    if storage.endpoint_url:
        options["endpoint_url"] = storage.endpoint_url
    if storage.access_key_id is not None:
        options["key"] = storage.access_key_id.get_secret_value()
    if storage.secret_access_key is not None:
        options["secret"] = storage.secret_access_key.get_secret_value()
    if storage.region:
        options["client_kwargs"] = {"region_name": storage.region}
    if storage.anonymous:
        options["anon"] = True
    return options


def _token(protocol: str, options: dict[str, Any]) -> str:
    environment = {name: os.environ.get(name) for name in AWS_ENV_VARS} if protocol in S3_PROTOCOLS else {}
    text = json.dumps([options, environment], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()  # secrets are part of the options: keep only a digest


def _create(url: str, protocol: str, options: dict[str, Any]) -> fsspec.AbstractFileSystem:
    try:
        fs = fsspec.filesystem(protocol, **options)
    except ImportError as exc:
        extra = EXTRAS.get(protocol)
        fix = f"pip install 'flyte-celery[{extra}]'" if extra else f"install fsspec's implementation of {protocol}://"
        raise StorageError(
            url, "missing_extra", f"{protocol}:// needs a package that is not installed ({exc}); {fix}", "use"
        ) from None
    except ValueError as exc:
        raise StorageError(url, "unknown_protocol", f"unknown protocol {protocol!r} ({exc})", "use") from None
    if protocol in S3_PROTOCOLS:
        fs.retries = S3FS_ATTEMPTS
    return fs
