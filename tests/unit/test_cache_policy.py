"""Cache configuration, versions, the typed input encoding and cache keys."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import importlib.util
import inspect
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any, List, Optional, Union  # noqa: UP035

import pydantic
import pytest

from flyte_celery._cache import (
    Cache,
    CachePolicy,
    FunctionBodyPolicy,
    VersionParameters,
    cache_from_request,
    cache_key,
    encode_value,
    inputs_hash,
    interface_hash,
    type_repr,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


# --- Cache behaviours -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("auto", "auto"),
        ("override", "override"),
        ("disable", "disable"),
        *[(alias, "auto") for alias in ("enable", "enabled", "on", "true", "yes", "ON", "Yes")],
        *[(alias, "disable") for alias in ("off", "false", "no", "none", "NONE")],
    ],
)
def test_behavior_aliases_normalise(given: str, expected: str) -> None:
    assert Cache(behavior=given).behavior == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["sometimes", "AUTO ", "", True, None])
def test_unknown_behavior_names_value_and_choices(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"invalid cache behavior") as info:
        Cache(behavior=bad)
    message = str(info.value)
    assert repr(bad) in message
    assert all(name in message for name in ("auto", "override", "disable", "enabled", "off"))


def test_caches_compare_by_value() -> None:
    assert Cache("auto") == Cache("on", policies=[FunctionBodyPolicy()])  # type: ignore[arg-type]
    assert Cache("auto") != Cache("auto", salt="x")
    assert hash(Cache("auto", ignored_inputs="a")) == hash(Cache("auto", ignored_inputs="a"))


def test_is_enabled() -> None:
    assert Cache("auto").is_enabled()
    assert Cache("override", version_override="v1").is_enabled()
    assert not Cache("disable").is_enabled()


def test_ignored_inputs_always_a_tuple() -> None:
    assert Cache("auto", ignored_inputs="ts").get_ignored_inputs() == ("ts",)
    assert Cache("auto", ignored_inputs=("a", "b")).get_ignored_inputs() == ("a", "b")
    assert Cache("auto").get_ignored_inputs() == ()
    assert Cache("disable", ignored_inputs="ts").get_ignored_inputs() == ("ts",)


def test_cache_from_request() -> None:
    assert cache_from_request(None) == Cache("disable")
    assert cache_from_request("auto").behavior == "auto"
    assert cache_from_request("on").behavior == "auto"  # type: ignore[arg-type]
    given = Cache("override", version_override="v3")
    assert cache_from_request(given) is given


def _sample(a: int, b: int = 2) -> int:
    return a + b


def _ast_version(func: Any, salt: str) -> str:
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    return hashlib.sha256(ast.dump(tree, include_attributes=False).encode() + salt.encode()).hexdigest()


def test_version_disabled_is_empty() -> None:
    assert Cache("disable", version_override="v1").get_version(VersionParameters(func=_sample)) == ""


def test_version_override_wins() -> None:
    assert Cache("override", version_override="v7").get_version(VersionParameters(func=_sample)) == "v7"
    assert Cache("auto", version_override="v7").get_version() == "v7"


def test_auto_version_hashes_the_function_body_policy() -> None:
    params = VersionParameters(func=_sample)
    body = _ast_version(_sample, "salty")
    assert FunctionBodyPolicy().get_version("salty", params) == body
    expected = hashlib.sha256(body.encode()).hexdigest()
    assert Cache("auto", salt="salty").get_version(params) == expected
    assert Cache("auto").get_version(params) != expected


def test_override_without_version_falls_back_to_policies() -> None:
    params = VersionParameters(func=_sample)
    assert Cache("override").get_version(params) == Cache("auto").get_version(params)


class _Fixed:
    def __init__(self, text: str) -> None:
        self.text = text

    def get_version(self, salt: str, params: VersionParameters) -> str:
        return f"{self.text}{salt}"


class _Broken:
    def get_version(self, salt: str, params: VersionParameters) -> str:
        raise RuntimeError("no git here")


def test_custom_policies_concatenate() -> None:
    assert isinstance(_Fixed("a"), CachePolicy)
    params = VersionParameters(func=None)
    cache = Cache("auto", salt="!", policies=[_Fixed("a"), _Fixed("b")])
    assert cache.get_version(params) == hashlib.sha256(b"a!b!").hexdigest()
    single = Cache("auto", policies=_Fixed("x"))
    assert single.get_version(params) == hashlib.sha256(b"x").hexdigest()


def test_policy_errors() -> None:
    with pytest.raises(ValueError, match="version_override or at least one cache policy"):
        Cache("auto", policies=[])
    with pytest.raises(ValueError, match="failed to compute a version") as info:
        Cache("auto", policies=[_Broken()]).get_version(VersionParameters(func=None))
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(ValueError, match="VersionParameters are required"):
        Cache("auto").get_version()


# --- FunctionBodyPolicy -----------------------------------------------------------------------------------------

_BODY = '''
def task(x: int) -> int:
    """Double it."""
    return x * 2
'''
_REFORMATTED = '''


def task(
    x: int,  # the input
) -> int:
    """Double it."""
    # a comment that changes nothing
    return (x  *  2)
'''
_CHANGED = '''
def task(x: int) -> int:
    """Double it."""
    return x * 3
'''


def _load(tmp_path: Path, name: str, source: str) -> ModuleType:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _body_version(func: Any) -> str:
    return FunctionBodyPolicy().get_version("", VersionParameters(func=func))


def test_function_body_ignores_formatting_and_comments(tmp_path: Path) -> None:
    original = _load(tmp_path, "fc_body_a", _BODY).task
    reformatted = _load(tmp_path, "fc_body_b", _REFORMATTED).task
    changed = _load(tmp_path, "fc_body_c", _CHANGED).task
    assert _body_version(original) == _body_version(reformatted)
    assert _body_version(original) != _body_version(changed)


def test_function_body_reads_source_once_per_function(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    func = _load(tmp_path, "fc_body_once", _BODY).task
    calls: list[object] = []
    real = inspect.getsource

    def counting(obj: Any) -> str:
        calls.append(obj)
        return real(obj)

    monkeypatch.setattr(inspect, "getsource", counting)
    first = FunctionBodyPolicy().get_version("s1", VersionParameters(func=func))
    second = FunctionBodyPolicy().get_version("s1", VersionParameters(func=func))
    salted = FunctionBodyPolicy().get_version("s2", VersionParameters(func=func))
    assert first == second != salted
    assert calls == [func]


def _exec_function(source: str) -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(source, "<generated>", "exec"), namespace)  # no file: the source is unavailable
    return namespace["task"]


def test_function_body_without_source_uses_the_code_object() -> None:
    func = _exec_function(_BODY)
    with pytest.raises(OSError):
        inspect.getsource(func)
    assert _body_version(func) == _body_version(_exec_function(_BODY))
    assert _body_version(func) != _body_version(_exec_function(_CHANGED))
    salted = FunctionBodyPolicy().get_version("x", VersionParameters(func=func))
    assert salted != _body_version(func)


_NO_SOURCE_SCRIPT = """
from flyte_celery._cache import FunctionBodyPolicy, VersionParameters
def task(x):
    def inner(y):
        return y in {"alpha", "beta", "gamma", "delta"}
    return inner(x) and x not in {"epsilon", "zeta", "eta"}
print(FunctionBodyPolicy().get_version("salt", VersionParameters(func=task)))
"""


def _run_python(code: str, seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_function_body_without_source_is_stable_across_processes() -> None:
    first = _run_python(_NO_SOURCE_SCRIPT, "1")
    second = _run_python(_NO_SOURCE_SCRIPT, "2")
    assert len(first) == 64
    assert first == second


# --- hashing ----------------------------------------------------------------------------------------------------


class Color(enum.Enum):
    RED = 1
    BLUE = "blue"


class Shade(enum.Enum):
    RED = 1


@dataclasses.dataclass
class Point:
    x: float
    y: float


@dataclasses.dataclass
class Pair:
    x: float
    y: float


class Model(pydantic.BaseModel):
    name: str
    tags: dict[str, int]


class FileLike:
    def __init__(self, path: str, hash: str | None = None) -> None:
        self.path, self.hash = path, hash


class Custom:
    def __init__(self, key: str) -> None:
        self.key = key

    def __flyte_hash__(self) -> str:
        return self.key


class Plain:
    def __init__(self, **attrs: Any) -> None:
        self.__dict__.update(attrs)


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a: Any, b: Any) -> None:
        self.a, self.b = a, b


def sample_inputs() -> tuple[dict[str, Any], dict[str, Any]]:
    """Values whose naive encodings depend on the hash seed or insertion order."""
    inputs = {
        "words": {"alpha", "beta", "gamma", "delta", "epsilon"},
        "frozen": frozenset({"x", "y", "z"}),
        "mapping": {"b": [1, 2.5, None], "a": {"nested": ("t", b"raw")}, "c": True},
        "point": Point(1.0, 2.0),
        "color": Color.BLUE,
        "when": dt.datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=dt.timezone.utc),
        "day": dt.date(2024, 1, 2),
        "clock": dt.time(3, 4, 5),
        "span": dt.timedelta(days=2, microseconds=7),
        "money": decimal.Decimal("12.50"),
        "ident": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "where": PurePosixPath("/data/in.csv"),
        "model": Model(name="m", tags={"z": 1, "a": 2}),
        "file": FileLike("s3://bucket/key"),
        "custom": Custom("k1"),
        "plain": Plain(q={"s", "t", "u"}, r=1),
        "slotted": Slotted({"m", "n"}, 2),
        "ratio": 3,
    }
    hints = {"ratio": float, "point": Point, "words": set[str]}
    return inputs, hints


def sample_digest() -> str:
    inputs, hints = sample_inputs()
    return inputs_hash(inputs, hints)


def test_inputs_hash_is_deterministic_across_processes() -> None:
    code = "from tests.unit.test_cache_policy import sample_digest; print(sample_digest())"
    here = sample_digest()
    assert _run_python(code, "0") == here
    assert _run_python(code, "12345") == here


def test_dict_and_set_order_do_not_matter() -> None:
    assert encode_value({"a": 1, "b": 2}) == encode_value({"b": 2, "a": 1})
    assert encode_value({3, 1, 2}) == encode_value({2, 3, 1})
    assert encode_value(frozenset({"q", "r"})) == encode_value({"r", "q"})
    assert inputs_hash({"a": 1, "b": 2}, {}) == inputs_hash({"b": 2, "a": 1}, {})


def test_float_hint_coerces_ints_like_flyte() -> None:
    assert encode_value(1, float) == encode_value(1.0, float)
    assert encode_value(1, Optional[float]) == encode_value(1.0, float)
    assert encode_value([1, 2], list[float]) == encode_value([1.0, 2.0], list[float])
    assert encode_value({"k": 1}, dict[str, float]) == encode_value({"k": 1.0}, dict[str, float])
    assert encode_value(Point(1, 2), Point) == encode_value(Point(1.0, 2.0), Point)
    assert encode_value(1, Union[int, float]) == encode_value(1, int)
    assert encode_value(10**400, float) == encode_value(10**400, int)


_DISTINCT = [
    pytest.param((1, int), (1.0, float), id="int-vs-float"),
    pytest.param((1, Any), (1.0, Any), id="int-vs-float-untyped"),
    pytest.param((True, int), (1, int), id="bool-vs-int"),
    pytest.param((False, Any), (0, Any), id="false-vs-zero"),
    pytest.param((1, Any), ("1", Any), id="int-vs-str"),
    pytest.param(("a", Any), (b"a", Any), id="str-vs-bytes"),
    pytest.param((None, Any), ("", Any), id="none-vs-empty"),
    pytest.param((0.0, float), (-0.0, float), id="zero-signs"),
    pytest.param(([1, 2], Any), ((1, 2), Any), id="list-vs-tuple"),
    pytest.param(([1, 2], Any), ([2, 1], Any), id="list-order"),
    pytest.param(([1, 2], Any), ({1, 2}, Any), id="list-vs-set"),
    pytest.param((["ab", "c"], Any), (["a", "bc"], Any), id="string-boundaries"),
    pytest.param(({"a": 1}, Any), ({"a": 2}, Any), id="dict-values"),
    pytest.param(({"a": 1}, Any), ([("a", 1)], Any), id="dict-vs-pairs"),
    pytest.param((Point(1.0, 2.0), Any), (Pair(1.0, 2.0), Any), id="dataclass-types"),
    pytest.param((Point(1.0, 2.0), Any), (Point(2.0, 1.0), Any), id="dataclass-fields"),
    pytest.param((Color.RED, Any), (1, Any), id="enum-vs-value"),
    pytest.param((Color.RED, Any), (Shade.RED, Any), id="enum-classes"),
    pytest.param((dt.datetime(2024, 1, 1), Any), (dt.date(2024, 1, 1), Any), id="datetime-vs-date"),
    pytest.param(
        (dt.datetime(2024, 1, 1), Any), (dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), Any), id="naive-vs-aware"
    ),
    pytest.param((dt.timedelta(seconds=1), Any), (dt.timedelta(microseconds=1), Any), id="timedeltas"),
    pytest.param((decimal.Decimal("1.5"), Any), (1.5, Any), id="decimal-vs-float"),
    pytest.param((uuid.UUID(int=1), Any), (str(uuid.UUID(int=1)), Any), id="uuid-vs-str"),
    pytest.param((Path("/a/b"), Any), ("/a/b", Any), id="path-vs-str"),
    pytest.param((Model(name="a", tags={}), Any), ({"name": "a", "tags": {}}, Any), id="model-vs-dict"),
    pytest.param((FileLike("s3://x"), Any), (FileLike("s3://y"), Any), id="file-paths"),
    pytest.param((FileLike("s3://x", "h1"), Any), (FileLike("s3://x", "h2"), Any), id="file-hashes"),
    pytest.param((Custom("a"), Any), (Custom("b"), Any), id="flyte-hash"),
    pytest.param((Plain(a=1), Any), (Plain(a=2), Any), id="object-attrs"),
    pytest.param((Slotted(1, 2), Any), (Slotted(2, 1), Any), id="object-slots"),
]


@pytest.mark.parametrize(("left", "right"), _DISTINCT)
def test_distinct_values_encode_differently(left: tuple[Any, Any], right: tuple[Any, Any]) -> None:
    assert encode_value(*left) != encode_value(*right)


def test_file_like_hash_wins_over_path() -> None:
    assert encode_value(FileLike("s3://a", "same")) == encode_value(FileLike("s3://b", "same"))
    assert encode_value(FileLike("s3://a", "")) == encode_value(FileLike("s3://a", None))


def test_cycles_terminate() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    assert encode_value(loop) == encode_value(loop)
    assert encode_value(loop) != encode_value([1, [1]])


def test_ignored_inputs_are_dropped() -> None:
    hints = {"x": int, "ts": str}
    first = inputs_hash({"x": 1, "ts": "monday"}, hints, ignored=("ts",))
    assert first == inputs_hash({"x": 1, "ts": "tuesday"}, hints, ignored=("ts",))
    assert first == inputs_hash({"x": 1}, hints)
    assert first != inputs_hash({"x": 2, "ts": "monday"}, hints, ignored=("ts",))
    assert inputs_hash({"x": 1, "ts": "monday"}, hints) != inputs_hash({"x": 1, "ts": "tuesday"}, hints)


def test_inputs_cannot_bleed_into_each_other() -> None:
    assert inputs_hash({"a": "x;b:sy"}, {}) != inputs_hash({"a": "x", "b": "y"}, {})
    assert inputs_hash({"a": 1}, {}) != inputs_hash({"b": 1}, {})


def test_type_repr_is_canonical() -> None:
    assert type_repr(Optional[int]) == type_repr(int | None) == type_repr(None | int) == "Union[None, int]"
    assert type_repr(List[int]) == type_repr(list[int]) == "list[int]"  # noqa: UP006
    assert type_repr(dict[str, Point]) == "dict[str, tests.unit.test_cache_policy.Point]"
    assert type_repr(tuple[int, ...]) == "tuple[int, ...]"


def test_interface_hash() -> None:
    base = interface_hash({"a": int, "b": Optional[str]}, float)
    assert base == interface_hash({"b": str | None, "a": int}, float)
    assert base != interface_hash({"a": int, "b": Optional[str]}, int)
    assert base != interface_hash({"a": float, "b": Optional[str]}, float)
    assert base != interface_hash({"a": int, "c": Optional[str]}, float)
    assert len(base) == 64


# --- cache keys -------------------------------------------------------------------------------------------------

_KEY_FIELDS = {"task_name": "env.task", "inputs_hash": "i" * 64, "interface_hash": "f" * 64, "cache_version": "v1"}


def test_global_scope_shares_across_projects() -> None:
    one = cache_key(**_KEY_FIELDS, scope="global", project="p1", domain="development")
    assert one == cache_key(**_KEY_FIELDS, scope="global", project="p2", domain="production")
    assert one.startswith("g:")


def test_project_domain_scope_separates_pairs() -> None:
    pairs = [("p1", "d"), ("p2", "d"), ("p1", "e"), ("a:b", "c"), ("a", "b:c"), ("a/b", "c"), ("a", "b/c")]
    keys = {cache_key(**_KEY_FIELDS, scope="project-domain", project=p, domain=d) for p, d in pairs}
    assert len(keys) == len(pairs)
    assert cache_key(**_KEY_FIELDS, scope="project-domain", project="p1", domain="d") in keys
    assert cache_key(**_KEY_FIELDS, scope="global", project="p1", domain="d") not in keys


@pytest.mark.parametrize("field", sorted(_KEY_FIELDS))
def test_every_field_changes_the_key(field: str) -> None:
    changed = {**_KEY_FIELDS, field: _KEY_FIELDS[field] + "x"}
    assert cache_key(**changed, scope="global", project=None, domain=None) != cache_key(
        **_KEY_FIELDS, scope="global", project=None, domain=None
    )


def test_fields_cannot_bleed_into_each_other() -> None:
    a = cache_key(**{**_KEY_FIELDS, "task_name": "ab", "cache_version": "c"}, scope="global", project=None, domain=None)
    b = cache_key(**{**_KEY_FIELDS, "task_name": "a", "cache_version": "bc"}, scope="global", project=None, domain=None)
    assert a != b


def test_unknown_scope_rejected() -> None:
    with pytest.raises(ValueError, match="'everywhere'"):
        cache_key(**_KEY_FIELDS, scope="everywhere", project=None, domain=None)  # type: ignore[arg-type]


def test_core_imports_without_transport() -> None:
    code = (
        "import sys\n"
        "import flyte_celery._cache, flyte_celery._cache.key, flyte_celery._cache.sqlite_store\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'redis', 'celery', 'kombu'}))\n"
    )
    assert _run_python(code, "0") == "[]"
