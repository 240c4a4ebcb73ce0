"""`init()` and `init_from_config()`: which settings the process ends up with."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import flyte_celery as flyte
from flyte_celery._config_loader import get_settings
from flyte_celery.errors import InitializationError


@pytest.fixture(autouse=True)
def in_empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("FLYTE_CELERY_CONFIG", "FLYTE_CELERY_RUN_MODE", "FLYTE_CELERY_RUN_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    yield tmp_path
    flyte.init()


def test_init_reads_no_config_file_but_honours_the_environment(
    in_empty_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (in_empty_dir / "config.yaml").write_text("run:\n  project: from-file\n")
    monkeypatch.setenv("FLYTE_CELERY_RUN_MODE", "remote")

    flyte.init(project="p")

    settings = get_settings()
    assert settings.source is None
    assert settings.run.project == "p"
    assert settings.run.mode == "remote"


def test_init_from_config_reads_the_file_in_the_current_directory(in_empty_dir: Path) -> None:
    (in_empty_dir / "config.yaml").write_text("run:\n  project: from-file\n")

    flyte.init_from_config()

    assert get_settings().run.project == "from-file"
    assert flyte.current_project() == "from-file"


def test_no_file_at_all_means_local_mode_with_defaults() -> None:
    flyte.init_from_config()

    assert get_settings().source is None
    assert get_settings().run.mode == "local"


def test_an_explicit_path_that_does_not_exist_is_an_initialization_error(in_empty_dir: Path) -> None:
    with pytest.raises(InitializationError, match=r"nope\.yaml"):
        flyte.init_from_config(in_empty_dir / "nope.yaml")
