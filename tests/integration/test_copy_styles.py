"""Flyte's copy styles on real workers: "all" ships the source tree under root_dir (a module the client never
imported is importable on the worker, and reads a file beside it), "loaded_modules" ships only what was loaded,
"none" relies on the workers' environment; a bundle too big for Redis travels through storage."""

from __future__ import annotations

import importlib
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import redis

import flyte_celery as flyte
from flyte_celery._celery.keys import Keys
from flyte_celery._celery.offload import REFERENCE_MAGIC
from flyte_celery._init import current_settings
from flyte_celery.errors import RunOptionError, RuntimeSystemError, RuntimeUserError
from tests._workers import WorkerFactory

RUN_DEADLINE_S = 120.0
MAX_REFERENCE_BYTES = 1024

APP = """
import flyte_celery as flyte

env = flyte.TaskEnvironment("copy-styles")


@env.task
async def greet() -> tuple[str, str]:
    import {late} as late  # never imported by the client: only a tree that holds it makes this work

    return late.greeting(), late.__file__
"""

LATE = """
from pathlib import Path


def greeting() -> str:
    return (Path(__file__).parent / "data" / "greeting.txt").read_text()
"""


class Project:
    """A project directory with a task module, a module only a task imports, and a data file."""

    def __init__(self, root: Path) -> None:
        suffix = secrets.token_hex(4)
        self.root = root
        self.late_name = f"late_{suffix}"
        self.app_name = f"app_{suffix}"
        (root / "data").mkdir(parents=True)
        (root / "data" / "greeting.txt").write_text(f"hello from the tree {suffix}")
        (root / f"{self.late_name}.py").write_text(LATE)
        (root / f"{self.app_name}.py").write_text(APP.format(late=self.late_name))
        (root / ".gitignore").write_text("ignored/\n")
        (root / "ignored").mkdir()
        (root / "ignored" / "huge.bin").write_bytes(os.urandom(4 * 1024 * 1024))

    @property
    def greeting(self) -> str:
        return (self.root / "data" / "greeting.txt").read_text()

    def app(self) -> ModuleType:
        sys.path.insert(0, str(self.root))
        try:
            return importlib.import_module(self.app_name)
        finally:
            sys.path.remove(str(self.root))


def bundle_records(redis_url: str) -> list[bytes]:
    client = redis.Redis.from_url(redis_url)
    try:
        keys = client.scan_iter(Keys(current_settings().redis.key_prefix).bundle("*"))
        return [client.get(key) or b"" for key in keys]
    finally:
        client.close()


@pytest.fixture
def project(tmp_path: Path, worker_factory: WorkerFactory) -> Iterator[Project]:
    made = Project(tmp_path / "project")
    flyte.init_from_config(root_dir=made.root)
    yield made
    sys.modules.pop(made.app_name, None)


def test_all_ships_the_tree_so_a_module_imported_only_by_a_task_works(
    worker_factory: WorkerFactory, project: Project, tmp_path: Path, redis_url: str, redis_client: object
) -> None:
    worker_factory.start()
    run = flyte.with_runcontext(mode="remote", copy_style="all", run_base_dir=str(tmp_path / "m")).run(
        project.app().greet
    )
    greeting, late_file = run.outputs(timeout=RUN_DEADLINE_S)
    assert greeting == project.greeting
    assert not Path(late_file).is_relative_to(project.root), "imported from the project, not the shipped tree"
    assert f"flyte-celery-trees-{os.getuid()}" in late_file
    # The 4 MiB file under the .gitignore'd directory stayed out: the bundle is small enough for Redis.
    assert [record.startswith(REFERENCE_MAGIC) for record in bundle_records(redis_url)] == [False]


def test_loaded_modules_does_not_ship_a_module_the_client_never_imported(
    worker_factory: WorkerFactory, project: Project, tmp_path: Path
) -> None:
    worker_factory.start()
    run = flyte.with_runcontext(mode="remote", copy_style="loaded_modules", run_base_dir=str(tmp_path / "m")).run(
        project.app().greet
    )
    with pytest.raises(RuntimeUserError) as failure:
        run.outputs(timeout=RUN_DEADLINE_S)
    assert failure.value.code == "ModuleNotFoundError"
    assert project.late_name in str(failure.value)


def test_none_imports_the_code_from_the_workers_environment(
    worker_factory: WorkerFactory, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(project.root))  # the code is "baked into the image"
    worker_factory.start()
    run = flyte.with_runcontext(mode="remote", copy_style="none", version="v1", run_base_dir=str(tmp_path / "m")).run(
        project.app().greet
    )
    greeting, late_file = run.outputs(timeout=RUN_DEADLINE_S)
    assert greeting == project.greeting
    assert Path(late_file).is_relative_to(project.root)


def test_none_without_the_code_on_the_worker_names_the_missing_module(
    worker_factory: WorkerFactory, project: Project, tmp_path: Path
) -> None:
    worker_factory.start()
    run = flyte.with_runcontext(mode="remote", copy_style="none", version="v1", run_base_dir=str(tmp_path / "m")).run(
        project.app().greet
    )
    with pytest.raises(RuntimeSystemError) as failure:
        run.outputs(timeout=RUN_DEADLINE_S)
    assert failure.value.code == "BundleImportError"
    assert project.app_name in str(failure.value)
    assert "copy_style" in str(failure.value)


def test_a_bundle_too_big_for_redis_travels_through_storage(
    worker_factory: WorkerFactory, project: Project, tmp_path: Path, redis_url: str, redis_client: object
) -> None:
    (project.root / "data" / "model.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    worker_factory.start()
    run = flyte.with_runcontext(mode="remote", copy_style="all", run_base_dir=str(tmp_path / "m")).run(
        project.app().greet
    )
    assert run.outputs(timeout=RUN_DEADLINE_S).o0 == project.greeting
    records = bundle_records(redis_url)
    assert records, "no bundle was stored"
    assert all(record.startswith(REFERENCE_MAGIC) and len(record) < MAX_REFERENCE_BYTES for record in records)
    assert list((tmp_path / "m").glob("**/bundles/*.bundle")), "the bundle is not in the run's metadata dir"


def test_a_task_outside_root_dir_is_refused_before_anything_is_sent(
    worker_factory: WorkerFactory, project: Project, tmp_path: Path
) -> None:
    flyte.init_from_config(root_dir=tmp_path / "elsewhere")
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(RunOptionError, match="a worker could not import from it"):
        flyte.with_runcontext(mode="remote", copy_style="all").run(project.app().greet)
