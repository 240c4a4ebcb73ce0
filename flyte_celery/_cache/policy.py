"""Flyte-compatible cache configuration: `Cache`, cache policies and how a cache version is computed."""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap
import types
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final, Literal, Protocol, Union, cast, get_args, runtime_checkable

CacheBehavior = Literal["auto", "override", "disable"]
CacheLookupScope = Literal["global", "project-domain"]

_BEHAVIORS: Final[tuple[str, ...]] = get_args(CacheBehavior)
# What users type instead of the canonical names; Flyte accepts the same spellings.
_BEHAVIOR_ALIASES: Final[dict[str, CacheBehavior]] = {
    "enable": "auto",
    "enabled": "auto",
    "on": "auto",
    "true": "auto",
    "yes": "auto",
    "off": "disable",
    "false": "disable",
    "no": "disable",
    "none": "disable",
}


@dataclass(frozen=True)
class VersionParameters:
    """What a cache policy may look at to compute a version.

    Args:
        func: The task's function (any callable), or None.
        image: The task's container image (a name or an image object), when known.
    """

    func: Callable[..., Any] | None
    image: object | None = None


@runtime_checkable
class CachePolicy(Protocol):
    """A strategy computing a task's cache version.

    The default is `FunctionBodyPolicy`. A custom policy returns any string; `Cache` hashes the concatenation of
    every policy's result.
    """

    def get_version(self, salt: str, params: VersionParameters) -> str:
        """Return this policy's version string for `params`, mixing in `salt`."""
        ...


class FunctionBodyPolicy:
    """The default policy: a SHA-256 of the function's source AST plus the salt.

    Formatting and comments do not change the version; any change to the code (including its decorator lines and
    docstring) does. Callees, imported helpers and the image are not included. When the source cannot be read (a
    function defined in `python -c`, a REPL, or unpickled by value on a worker without the file), the version is
    computed from the function's code object instead; that version is stable across processes on one Python
    version but differs from the source-based one, so compute a task's version where its source is available and
    ship it.
    """

    # Reading and parsing source is slow (~100 us+); hash each function object once.
    _digests: weakref.WeakKeyDictionary[Any, hashlib._Hash] = weakref.WeakKeyDictionary()

    def get_version(self, salt: str, params: VersionParameters) -> str:
        """Return the hex SHA-256 of the function's AST dump followed by `salt` ("" when there is no function)."""
        func = params.func
        if func is None:
            return ""
        digest = self._cached_digest(func)
        digest.update(salt.encode("utf-8"))
        return digest.hexdigest()

    def _cached_digest(self, func: Callable[..., Any]) -> hashlib._Hash:
        try:
            cached = self._digests.get(func)
        except TypeError:  # unhashable or not weak-referenceable callable: no caching
            return _body_digest(func)
        if cached is None:
            cached = _body_digest(func)
            try:
                self._digests[func] = cached
            except TypeError:
                pass
        return cached.copy()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FunctionBodyPolicy)  # stateless: `Cache("auto") == Cache("auto")`

    def __hash__(self) -> int:
        return hash(FunctionBodyPolicy)

    def __repr__(self) -> str:
        return "FunctionBodyPolicy()"


def _body_digest(func: Callable[..., Any]) -> hashlib._Hash:
    """A sha256 object fed with the function's AST dump (or its code object when the source is unavailable)."""
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):
        return hashlib.sha256(b"code:" + _code_bytes(_code_of(func)))
    tree = ast.parse(textwrap.dedent(source))
    return hashlib.sha256(ast.dump(tree, include_attributes=False).encode("utf-8"))


def _code_of(func: Callable[..., Any]) -> types.CodeType:
    target = inspect.unwrap(func)
    code = getattr(target, "__code__", None)
    if code is None:
        code = getattr(getattr(target, "__call__", None), "__code__", None)  # noqa: B004 - callable instances
    if not isinstance(code, types.CodeType):
        raise ValueError(f"cannot version {func!r}: its source is unavailable and it has no code object")
    return code


def _code_bytes(code: types.CodeType) -> bytes:
    parts = [code.co_code, _consts_bytes(code.co_consts), repr(code.co_names).encode("utf-8")]
    return b"|".join(parts)


def _consts_bytes(consts: object) -> bytes:
    if isinstance(consts, types.CodeType):
        return b"<" + _code_bytes(consts) + b">"
    if isinstance(consts, tuple):
        return b"(" + b",".join(_consts_bytes(c) for c in consts) + b")"
    if isinstance(consts, frozenset):  # iteration order follows string hashing, which varies per process
        return b"{" + b",".join(sorted(_consts_bytes(c) for c in consts)) + b"}"
    return f"{type(consts).__name__}:{consts!r}".encode()


def _default_policies() -> tuple[CachePolicy, ...]:
    return (FunctionBodyPolicy(),)


@dataclass(frozen=True)
class Cache:
    """Cache configuration for a task (Flyte's `flyte.Cache`).

    Args:
        behavior: `"auto"` (version computed by the policies, by default from the function body), `"override"`
            (use `version_override`; without one it falls back to the policies) or `"disable"`. The aliases
            enable/enabled/on/true/yes mean "auto" and off/false/no/none mean "disable".
        version_override: An explicit cache version; when set it wins over the policies.
        serialize: When True, concurrent identical calls run once and the others wait for its result
            (across processes and workers alike).
        ignored_inputs: Input names (or one name) left out of the cache key.
        salt: Mixed into every policy's version; change it to start a fresh cache namespace.
        policies: One or more `CachePolicy` objects; defaults to `[FunctionBodyPolicy()]`.
        max_age: The oldest cached result to reuse, as a timedelta or seconds; None or 0: any age.

    Raises:
        ValueError: On an unknown behavior, or with no version_override and no policies.
    """

    behavior: CacheBehavior
    version_override: str | None = None
    serialize: bool = False
    ignored_inputs: tuple[str, ...] | str = field(default_factory=tuple)
    salt: str = ""
    policies: Sequence[CachePolicy] | CachePolicy | None = None
    max_age: timedelta | int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "behavior", _canonical_behavior(self.behavior))
        object.__setattr__(self, "max_age", _max_age(self.max_age))
        if self.behavior == "disable":
            return
        policies = self.policies
        if policies is None:
            policies = _default_policies()
        elif isinstance(policies, CachePolicy):
            policies = (policies,)
        else:
            policies = tuple(policies)
        object.__setattr__(self, "policies", policies)
        if self.version_override is None and not policies:
            raise ValueError("Cache needs a version_override or at least one cache policy")

    @property
    def max_age_delta(self) -> timedelta | None:
        """`max_age` as a timedelta (None: any age)."""
        return _max_age(self.max_age)

    def is_enabled(self) -> bool:
        """True when results are cached ("auto" or "override")."""
        return self.behavior in ("auto", "override")

    def get_ignored_inputs(self) -> tuple[str, ...]:
        """The input names excluded from the cache key, always as a tuple."""
        if isinstance(self.ignored_inputs, str):
            return (self.ignored_inputs,)
        return tuple(self.ignored_inputs)

    def get_version(self, params: VersionParameters | None = None) -> str:
        """Return the cache version.

        "" when disabled; `version_override` when set; otherwise the hex SHA-256 of the concatenated versions of
        every policy.

        Raises:
            ValueError: When `params` is needed but missing, or a policy fails (chained to its error).
        """
        if not self.is_enabled():
            return ""
        if self.version_override is not None:
            return self.version_override
        if params is None:
            raise ValueError("VersionParameters are required when Cache has no version_override")
        combined = ""
        for policy in self._policy_list():
            try:
                combined += policy.get_version(self.salt, params)
            except Exception as exc:
                raise ValueError(f"cache policy {policy!r} failed to compute a version") from exc
        return hashlib.sha256(combined.encode("utf-8")).hexdigest()

    def _policy_list(self) -> tuple[CachePolicy, ...]:
        policies = self.policies
        if policies is None:
            return ()
        if isinstance(policies, CachePolicy):
            return (policies,)
        return tuple(policies)


CacheRequest = Union[CacheBehavior, Cache]


def cache_from_request(req: CacheRequest | None) -> Cache:
    """Turn a task's `cache=` argument (a behavior string, a `Cache`, or None for disabled) into a `Cache`."""
    if req is None:
        return Cache(behavior="disable")
    if isinstance(req, Cache):
        return req
    return Cache(behavior=req)


def _max_age(value: object) -> timedelta | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, timedelta)):
        raise TypeError(f"max_age must be an int (seconds), a timedelta or None, got {value!r}")
    age = timedelta(seconds=value) if isinstance(value, int) else value
    if age < timedelta(0):
        raise ValueError(f"max_age must not be negative, got {value!r}")
    return age


def _canonical_behavior(value: object) -> CacheBehavior:
    if isinstance(value, str):
        if value in _BEHAVIORS:
            return cast(CacheBehavior, value)
        aliased = _BEHAVIOR_ALIASES.get(value.lower())
        if aliased is not None:
            return aliased
    raise ValueError(
        f"invalid cache behavior {value!r}: expected one of {list(_BEHAVIORS)} (aliases: {sorted(_BEHAVIOR_ALIASES)})"
    )
