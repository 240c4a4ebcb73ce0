"""Code bundles: which tasks a root reaches, the sealed round trip (and what it refuses to unpickle), and cache keys
without the source."""

from __future__ import annotations

import asyncio
import importlib
import json
import linecache
import os
import secrets
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import cloudpickle
import pytest

import flyte_celery
from flyte_celery._action_call import prepare_root_call
from flyte_celery._cache import VersionParameters
from flyte_celery._celery import bundle as bundle_module
from flyte_celery._celery.bundle import (
    BUNDLE_DIGEST_CHARS,
    Bundle,
    build_bundle,
    bundle_digest,
    collect_tasks,
    dumps_by_value,
    is_user_module,
    open_bundle,
    seal_bundle,
)
from flyte_celery._run_spec import RunSpec
from flyte_celery._signing import SEAL_HEADER_BYTES, KeyRing
from flyte_celery._task import TaskTemplate
from flyte_celery.errors import UnknownSigningKeyError, UnsafePayloadError
from tests.unit.bundle_programs import graph, leaf_module

GRAPH = "unit-bundle-graph"
KEYS = KeyRing(b"unit-bundle-key")
LOADED: list[str] = []  # what `_record_load` was called with: a pickle that reached the unpickler


def _record_load(tag: str) -> str:
    LOADED.append(tag)
    return tag


class LoadsLoudly:
    """Unpickling it calls `_record_load`, so a test can tell whether refused bytes were ever unpickled."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __reduce__(self) -> tuple[Any, ...]:
        return (_record_load, (self.tag,))


def names(*tasks: TaskTemplate[Any, Any]) -> set[str]:
    return {task.name for task in tasks}


@pytest.fixture
def source_module(tmp_path: Path) -> Iterator[tuple[ModuleType, Path]]:
    """A task module imported from a file of its own, which the test may delete; removed from sys.modules after."""
    name = f"unit_bundle_src_{secrets.token_hex(4)}"
    env_name = name.replace("_", "-")
    path = tmp_path / f"{name}.py"
    path.write_text(
        textwrap.dedent(
            f"""
            import dataclasses
            import flyte_celery as flyte

            env = flyte.TaskEnvironment({env_name!r}, cache="auto")


            @dataclasses.dataclass
            class Point:
                x: int


            @env.task
            async def tripled(x: int) -> int:
                return x * 3


            @env.task
            async def root(x: int) -> int:
                return await tripled(x) + 1
            """
        )
    )
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module(name)
        yield module, path
    finally:
        sys.modules.pop(name, None)
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))
        linecache.clearcache()


def make_source_unavailable(module: ModuleType, path: Path) -> None:
    """What a worker without the user's files sees: no module to import, no file to read the source from."""
    path.unlink()
    sys.modules.pop(module.__name__, None)
    sys.path.remove(str(path.parent))
    linecache.clearcache()


# --- collect_tasks ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("root", "reached"),
    [
        (graph.root_global, {graph.via_global}),
        (graph.root_closure, {graph.via_closure}),
        (graph.root_partial, {graph.via_partial}),
        (graph.root_attribute, {leaf_module.leaf_task}),
        (graph.root_nested, {graph.via_nested}),
        (graph.root_default, {graph.via_default}),
        (graph.root_depends_on, {graph.dep_task}),
    ],
    ids=["global", "closure", "partial", "module-attribute", "nested-function", "default-argument", "depends-on"],
)
def test_collect_tasks_follows_each_kind_of_reference(root: TaskTemplate[Any, Any], reached: set[Any]) -> None:
    assert set(collect_tasks(root)) == names(root, *reached)


def test_collect_tasks_maps_names_to_the_task_objects() -> None:
    found = collect_tasks(graph.root_all)
    for task in (graph.via_global, graph.via_partial, leaf_module.leaf_task, graph.dep_task):
        assert found[task.name] is task


def test_collect_tasks_reaches_through_other_roots_and_skips_uncalled_tasks() -> None:
    found = set(collect_tasks(graph.root_all))
    assert graph.never_called.name not in found
    assert leaf_module.unused_leaf.name not in found
    roots = (graph.root_global, graph.root_closure, graph.root_partial, graph.root_attribute)
    more = (graph.root_nested, graph.root_default, graph.root_depends_on)
    expected = names(graph.root_all, *roots, *more)
    expected |= names(graph.via_global, graph.via_closure, graph.via_partial, graph.via_nested, graph.via_default)
    expected |= names(leaf_module.leaf_task, graph.dep_task)
    assert found == expected


def test_collect_tasks_follows_class_methods() -> None:
    assert graph.via_global.name in collect_tasks(graph.root_class)


def test_collect_tasks_follows_keyword_only_defaults() -> None:
    assert graph.via_default.name in collect_tasks(graph.root_keyword_default)


# --- build_bundle / seal_bundle / open_bundle --------------------------------------------------------------------


def stored_and_opened(data: bytes) -> Bundle:
    """A client seals bundle bytes for their digest; a worker opens them by that digest."""
    return open_bundle(KEYS, bundle_digest(data), seal_bundle(KEYS, data))


def test_build_and_load_round_trip_keeps_tasks_by_name() -> None:
    data, built = build_bundle(graph.root_all)
    assert set(built.tasks) == set(collect_tasks(graph.root_all))
    loaded = stored_and_opened(data)
    assert isinstance(loaded, Bundle)
    assert set(loaded.tasks) == set(built.tasks)
    for name, task in loaded.tasks.items():
        assert task.name == name
        assert task.interface.hash == built.tasks[name].interface.hash
    # User modules travel by value: the loaded functions are new objects that still run.
    loaded_global = loaded.tasks[graph.via_global.name]
    assert loaded_global.func is not graph.via_global.func
    assert asyncio.run(loaded_global.func(1)) == 11


def test_cache_versions_are_computed_from_source_for_cached_tasks_only() -> None:
    data, built = build_bundle(graph.root_all)
    cached = {name for name, task in built.tasks.items() if task.cache.is_enabled()}
    assert cached
    assert all(name.startswith(f"{GRAPH}.") for name in cached)
    assert set(built.cache_versions) == cached
    for name in cached:
        task = built.tasks[name]
        expected = task.cache.get_version(VersionParameters(func=task.func, image=task.image))
        assert built.cache_versions[name] == expected
    assert stored_and_opened(data).cache_versions == built.cache_versions


def test_bundle_digest_is_a_stable_prefix_of_sha256() -> None:
    data, _ = build_bundle(graph.root_partial)
    digest = bundle_digest(data)
    assert len(digest) == BUNDLE_DIGEST_CHARS
    int(digest, 16)
    assert bundle_digest(data) == digest != bundle_digest(data + b"x")


def test_open_bundle_refuses_a_sealed_pickle_of_something_else() -> None:
    data = bundle_module.BUNDLE_MAGIC + bytes(8) + cloudpickle.dumps({"tasks": {}})
    digest = bundle_digest(data)
    with pytest.raises(UnsafePayloadError, match=f"code bundle {digest} holds a dict, not a bundle"):
        open_bundle(KEYS, digest, seal_bundle(KEYS, data))


def test_open_bundle_refuses_a_blob_stored_under_another_digest() -> None:
    data, _ = build_bundle(graph.root_partial)
    other, _ = build_bundle(graph.root_global)
    with pytest.raises(UnsafePayloadError) as info:
        open_bundle(KEYS, bundle_digest(other), seal_bundle(KEYS, data))
    assert type(info.value) is UnsafePayloadError
    assert f"code bundle {bundle_digest(other)} failed authentication" in str(info.value)


def test_open_bundle_refuses_bytes_that_do_not_hash_to_their_digest_without_loading_them() -> None:
    # Sealed by a key holder for the digest it is stored under, but not the bytes that digest names.
    data = cloudpickle.dumps(LoadsLoudly("mismatched"))
    digest = bundle_digest(cloudpickle.dumps("the real bundle"))
    blob = KEYS.seal(data, bundle_module.BUNDLE_PURPOSE, digest)
    with pytest.raises(UnsafePayloadError, match="does not hash to its digest"):
        open_bundle(KEYS, digest, blob)
    assert "mismatched" not in LOADED


def test_a_sealed_pickle_that_is_not_a_bundle_is_loaded_then_refused() -> None:
    # The control for the tests above: `LoadsLoudly` does record a load when its bytes pass every check.
    data = bundle_module.BUNDLE_MAGIC + bytes(8) + cloudpickle.dumps(LoadsLoudly("authentic"))
    with pytest.raises(UnsafePayloadError, match="holds a str, not a bundle"):
        open_bundle(KEYS, bundle_digest(data), seal_bundle(KEYS, data))
    assert "authentic" in LOADED


@pytest.mark.parametrize(
    "tamper",
    [
        lambda blob: blob[:-1] + bytes([blob[-1] ^ 1]),
        lambda blob: blob[SEAL_HEADER_BYTES:],
        lambda blob: b"",
    ],
    ids=["flipped-byte", "cut-header", "empty"],
)
def test_open_bundle_refuses_a_tampered_blob_without_loading_it(tamper: Any) -> None:
    data = cloudpickle.dumps(LoadsLoudly("tampered"))
    digest = bundle_digest(data)
    with pytest.raises(UnsafePayloadError):
        open_bundle(KEYS, digest, tamper(seal_bundle(KEYS, data)))
    assert "tampered" not in LOADED


def test_open_bundle_refuses_sealed_bytes_in_another_format() -> None:
    data = cloudpickle.dumps(LoadsLoudly("old format"))
    with pytest.raises(UnsafePayloadError, match="not in this version's bundle format"):
        open_bundle(KEYS, bundle_digest(data), seal_bundle(KEYS, data))
    assert "old format" not in LOADED


def test_open_bundle_refuses_the_raw_unsealed_bundle_bytes() -> None:
    data, _ = build_bundle(graph.root_partial)
    with pytest.raises(UnsafePayloadError, match="not a sealed payload"):
        open_bundle(KEYS, bundle_digest(data), data)


def test_open_bundle_refuses_a_bundle_of_another_key_naming_it() -> None:
    data, _ = build_bundle(graph.root_partial)
    foreign = KeyRing(b"another fleet's key")
    with pytest.raises(UnknownSigningKeyError) as info:
        open_bundle(KEYS, bundle_digest(data), seal_bundle(foreign, data))
    assert info.value.key_id == foreign.current_id
    assert info.value.accepted_ids == KEYS.ids


def test_open_bundle_with_a_rotated_ring_reads_bundles_of_the_old_key() -> None:
    data, built = build_bundle(graph.root_partial)
    rotated = KeyRing(b"the new key", [KEYS.current])
    assert set(open_bundle(rotated, bundle_digest(data), seal_bundle(KEYS, data)).tasks) == set(built.tasks)


def test_cache_key_survives_without_the_source(source_module: tuple[ModuleType, Path]) -> None:
    module, path = source_module
    spec = RunSpec(name="run-src", mode="remote", project="p", domain="d")
    original = prepare_root_call(spec, module.tripled, (4,), {}, "a0")
    assert original.cache_key is not None
    data, built = build_bundle(module.root)
    version = built.cache_versions[module.tripled.name]

    make_source_unavailable(module, path)
    loaded = stored_and_opened(data).tasks[module.tripled.name]
    # The file is gone here, but the shipped version (and the source, for tracebacks) came with the bundle: the key
    # is the one local mode computes.
    again = prepare_root_call(spec, loaded, (4,), {}, "a0")
    assert again.cache_key == original.cache_key
    assert again.context.version == original.context.version == version
    assert asyncio.run(loaded.func(4)) == 12


def test_bundled_functions_keep_their_file_and_source_lines(source_module: tuple[ModuleType, Path]) -> None:
    module, path = source_module
    data, _ = build_bundle(module.root)
    make_source_unavailable(module, path)
    loaded = stored_and_opened(data).tasks[module.tripled.name]
    code = loaded.func.__code__
    assert code.co_filename == str(path)  # cloudpickle alone names it "<dynamic-code>"
    import linecache

    assert "def tripled" in linecache.getline(code.co_filename, code.co_firstlineno + 1) + linecache.getline(
        code.co_filename, code.co_firstlineno
    )


# --- which modules travel by value -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module",
    [json, os, asyncio, sys, pytest, cloudpickle, flyte_celery, bundle_module],
    ids=["json", "os", "asyncio", "sys", "pytest", "cloudpickle", "flyte_celery", "flyte_celery._celery.bundle"],
)
def test_installed_and_stdlib_modules_are_not_user_modules(module: ModuleType) -> None:
    assert is_user_module(module) is False


def test_test_modules_are_user_modules(source_module: tuple[ModuleType, Path]) -> None:
    assert is_user_module(sys.modules[__name__])
    assert is_user_module(graph)
    assert is_user_module(source_module[0])


def test_build_bundle_leaves_no_module_registered_by_value() -> None:
    before = set(cloudpickle.list_registry_pickle_by_value())
    build_bundle(graph.root_all)
    assert set(cloudpickle.list_registry_pickle_by_value()) == before


def test_build_bundle_keeps_the_users_own_by_value_registration() -> None:
    cloudpickle.register_pickle_by_value(leaf_module)
    try:
        build_bundle(graph.root_attribute)
        assert leaf_module.__name__ in cloudpickle.list_registry_pickle_by_value()
    finally:
        if leaf_module.__name__ in cloudpickle.list_registry_pickle_by_value():
            cloudpickle.unregister_pickle_by_value(leaf_module)


def test_dumps_by_value_carries_user_classes(source_module: tuple[ModuleType, Path]) -> None:
    module, path = source_module
    data = dumps_by_value({"p": module.Point(3)})
    make_source_unavailable(module, path)
    assert cloudpickle.loads(data)["p"].x == 3
