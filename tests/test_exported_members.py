"""The public surface: `__all__` is sorted and complete, and each of Flyte's top-level names is provided or left
out on purpose (the classification lives in `tests/data/flyte_public_names.py`)."""

from __future__ import annotations

import flyte_celery
import flyte_celery.errors
from tests.data.flyte_public_names import FLYTE_ALL, FLYTE_NAMES, FLYTE_SUBMODULE_NAMES, PROVIDED

PROVIDED_NAMES = {name for name, status in FLYTE_NAMES.items() if status == PROVIDED}
LEFT_OUT = {name: reason for name, reason in FLYTE_NAMES.items() if reason != PROVIDED}


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


def test_every_flyte_name_is_classified() -> None:
    assert len(FLYTE_ALL) == len(set(FLYTE_ALL))
    assert sorted(FLYTE_NAMES) == sorted(FLYTE_ALL)
    assert all(reason.strip() for reason in LEFT_OUT.values())


def test_flyte_names_classified_as_provided_are_exported() -> None:
    missing = sorted(PROVIDED_NAMES - set(flyte_celery.__all__))
    assert not missing, f"classified as provided but not in flyte_celery.__all__: {missing}"


def test_flyte_names_classified_as_left_out_are_not_exported() -> None:
    exported = {name: reason for name, reason in LEFT_OUT.items() if name in flyte_celery.__all__}
    assert not exported, f"exported, so their classification is wrong: {exported}"


def test_names_beyond_flyte_top_level_say_where_flyte_keeps_them() -> None:
    beyond = set(flyte_celery.__all__) - set(FLYTE_ALL)
    assert beyond == set(FLYTE_SUBMODULE_NAMES)


def test_errors_module_exports_flyte_error_names() -> None:
    for name in ("RuntimeUserError", "NonRecoverableError", "TaskTimeoutError", "SyncTaskCallInAsyncContextError"):
        assert issubclass(getattr(flyte_celery.errors, name), Exception)
