"""The public surface: `__all__` is sorted, complete, and covers the Flyte names we promise."""

from __future__ import annotations

import flyte_celery
import flyte_celery.errors

# Flyte 2's top-level names that flyte-celery provides (the rest are remote-only: deploy, build, serve, triggers...).
FLYTE_NAMES_PROVIDED = {
    "AMD_GPU", "GPU", "HABANA_GAUDI", "TPU", "AsyncFunctionTaskTemplate", "Backoff", "Cache", "CachePolicy",
    "CacheRequest", "Device", "DeviceClass", "Environment", "Image", "Neuron", "PodTemplate", "Resources",
    "RetryStrategy", "ReusePolicy", "Secret", "SecretRequest", "TaskEnvironment", "TaskTemplate", "Timeout",
    "TimeoutType", "__version__", "ctx", "current_domain", "current_project", "custom_context",
    "get_custom_context", "group", "init", "init_from_config", "logger", "map", "run", "system_logger", "trace",
    "version", "with_runcontext",
}  # fmt: skip


def _isort_key(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: CONSTANT_CASE, then CamelCase, then the rest, each alphabetical.
    if name.isupper():
        return (0, name)
    return (1, name) if name[0].isupper() else (2, name)


def test_all_is_sorted_and_unique() -> None:
    names = flyte_celery.__all__
    assert len(names) == len(set(names))
    assert names == sorted(names, key=_isort_key)


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in vars(flyte_celery) if not name.startswith("_") or name == "__version__"}
    modules = {name for name in public if type(getattr(flyte_celery, name)).__name__ == "module"}
    assert set(flyte_celery.__all__) == public - modules - {"annotations"}


def test_flyte_names_are_provided() -> None:
    missing = FLYTE_NAMES_PROVIDED - set(flyte_celery.__all__)
    assert not missing


def test_errors_module_exports_flyte_error_names() -> None:
    for name in ("RuntimeUserError", "NonRecoverableError", "TaskTimeoutError", "SyncTaskCallInAsyncContextError"):
        assert issubclass(getattr(flyte_celery.errors, name), Exception)
