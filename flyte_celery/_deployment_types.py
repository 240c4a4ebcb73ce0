"""Inert deployment settings Flyte tasks declare: ``Secret``, ``ReusePolicy`` and ``PodTemplate``.

They are validated like Flyte validates them, so a task file that Flyte accepts is accepted here and one that Flyte
rejects fails the same way, but nothing is deployed: Celery workers run wherever they were started.
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, Union

SECRETS_MOUNT_PATH = "/etc/flyte/secrets"
REUSE_MIN_TTL_S = 30
PRIMARY_CONTAINER_DEFAULT_NAME = "primary"
_CAPABILITY_ANNOTATION_PREFIX = "flyte.org/capability-"
_ENV_VAR_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


@dataclass(frozen=True)
class Secret:
    """A secret a task asks for, exposed as an environment variable or a file.

    Args:
        key: The secret's name in the secret store.
        group: The secret's group in stores that have groups.
        mount: Where to mount the secret as a file; only ``/etc/flyte/secrets`` is supported, as in Flyte.
        as_env_var: The environment variable to expose it as. Defaults to ``[GROUP_]KEY`` upper-cased with ``-``
            replaced by ``_`` when neither ``mount`` nor ``as_env_var`` is given.
    """

    key: str
    group: str | None = None
    mount: Path | str | None = None
    as_env_var: str | None = None

    def __post_init__(self) -> None:
        if not self.mount and not self.as_env_var:
            name = f"{self.group}_{self.key}" if self.group else self.key
            object.__setattr__(self, "as_env_var", name.replace("-", "_").upper())
        if self.mount and str(self.mount) != SECRETS_MOUNT_PATH:
            raise ValueError(f"Secret mount must be {SECRETS_MOUNT_PATH}, got {str(self.mount)!r}")
        if self.as_env_var is not None and not _ENV_VAR_NAME.match(self.as_env_var):
            raise ValueError(
                f"Secret as_env_var {self.as_env_var!r} is not a valid environment variable name "
                f"(must match {_ENV_VAR_NAME.pattern})"
            )

    def stable_hash(self) -> str:
        """A hex digest of the fields that is the same in every process (unlike ``hash()``)."""
        parts = (self.key, self.group or "", str(self.mount) if self.mount else "", self.as_env_var or "")
        return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()


SecretRequest = Union[str, Secret, list[Union[str, Secret]]]


def secrets_from_request(secrets: SecretRequest) -> list[Secret]:
    """Normalise a ``secrets=`` argument (a key, a ``Secret`` or a list of either) to a list of ``Secret``."""
    if isinstance(secrets, (str, Secret)):
        secrets = [secrets]
    return [Secret(key=s) if isinstance(s, str) else s for s in secrets]


def _ttl(name: str, value: object) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, (int, timedelta)):
        raise ValueError(f"ReusePolicy.{name} must be an int (seconds) or a timedelta, got {value!r}")
    ttl = timedelta(seconds=value) if isinstance(value, int) else value
    if ttl.total_seconds() < REUSE_MIN_TTL_S:
        raise ValueError(f"ReusePolicy.{name} must be at least {REUSE_MIN_TTL_S} seconds, got {ttl}")
    return ttl


@dataclass(frozen=True)
class ReusePolicy:
    """Flyte's warm-container reuse settings for an environment; recorded, not acted on.

    Args:
        replicas: A fixed replica count or a ``(min, max)`` range; normalised to a tuple.
        idle_ttl: How long the whole environment may stay idle (seconds or timedelta, at least 30 s).
        concurrency: Tasks per replica at once (at least 1).
        scaledown_ttl: How long one idle replica waits before it is removed (seconds or timedelta, at least 30 s).
        scope: ``"global"`` (shared by all runs) or ``"run"`` (one environment per run).
    """

    replicas: int | tuple[int, int] = 2
    idle_ttl: int | timedelta = 30
    concurrency: int = 1
    scaledown_ttl: int | timedelta = 30
    scope: Literal["global", "run"] = "global"

    def __post_init__(self) -> None:
        if self.scope not in ("global", "run"):
            raise ValueError(f'ReusePolicy.scope must be "global" or "run", got {self.scope!r}')
        replicas: object = self.replicas
        if isinstance(replicas, int) and not isinstance(replicas, bool):
            replicas = (replicas, replicas)
        if not isinstance(replicas, tuple) or len(replicas) != 2:
            raise ValueError(f"ReusePolicy.replicas must be an int or a tuple of two ints, got {self.replicas!r}")
        for label, count in zip(("min", "max"), replicas, strict=True):
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"ReusePolicy.replicas {label} must be an int >= 0, got {count!r}")
        if replicas[0] > replicas[1]:
            raise ValueError(f"ReusePolicy.replicas min ({replicas[0]}) must not exceed max ({replicas[1]})")
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ValueError(f"ReusePolicy.concurrency must be an int >= 1, got {self.concurrency!r}")
        object.__setattr__(self, "replicas", replicas)
        object.__setattr__(self, "idle_ttl", _ttl("idle_ttl", self.idle_ttl))
        object.__setattr__(self, "scaledown_ttl", _ttl("scaledown_ttl", self.scaledown_ttl))

    @property
    def min_replicas(self) -> int:
        """The minimum replica count."""
        return self.replicas[0] if isinstance(self.replicas, tuple) else self.replicas

    @property
    def max_replicas(self) -> int:
        """The maximum replica count."""
        return self.replicas[1] if isinstance(self.replicas, tuple) else self.replicas

    def get_scaledown_ttl(self) -> timedelta | None:
        """The per-replica scale-down delay as a timedelta."""
        ttl = self.scaledown_ttl
        return ttl if isinstance(ttl, timedelta) else timedelta(seconds=ttl)


@dataclass(frozen=True)
class PodTemplate:
    """A Kubernetes pod template for a task; recorded, not applied (Celery workers are not pods we create).

    Args:
        pod_spec: A ``kubernetes.client.V1PodSpec`` (any object; kept as given).
        primary_container_name: The container the task runs in.
        labels: Pod labels.
        annotations: Pod annotations.
        termination_grace_period_s: Seconds between SIGTERM and SIGKILL, set by ``with_termination_grace_period``
            (Flyte writes it into ``pod_spec``, which would need the ``kubernetes`` package here).
    """

    pod_spec: Any = None
    primary_container_name: str = PRIMARY_CONTAINER_DEFAULT_NAME
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    termination_grace_period_s: int | None = None

    @classmethod
    def from_spec(
        cls,
        pod_spec: Any,
        *,
        primary_container_name: str | None = None,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> PodTemplate:
        """Wrap a copy of ``pod_spec``, picking the primary container as Flyte does.

        The primary container is ``primary_container_name`` if given (it must exist), else the one named
        ``"primary"``, else the only container; anything else raises ``ValueError``.
        """
        names = [getattr(c, "name", None) for c in (getattr(pod_spec, "containers", None) or [])]
        if primary_container_name is not None:
            if primary_container_name not in names:
                raise ValueError(f"primary_container_name {primary_container_name!r} is not in the pod spec {names}")
            resolved = primary_container_name
        elif PRIMARY_CONTAINER_DEFAULT_NAME in names:
            resolved = PRIMARY_CONTAINER_DEFAULT_NAME
        elif len(names) == 1 and names[0]:
            resolved = names[0]
        else:
            raise ValueError(
                f"cannot tell the primary container among {names}; pass primary_container_name= to pick one"
            )
        return cls(
            pod_spec=copy.deepcopy(pod_spec),
            primary_container_name=resolved,
            labels=dict(labels) if labels else None,
            annotations=dict(annotations) if annotations else None,
        )

    def with_termination_grace_period(self, termination_grace_period: int | timedelta) -> PodTemplate:
        """Return a copy with the termination grace period set (an int of seconds or a timedelta, >= 0)."""
        value: object = termination_grace_period
        if isinstance(value, bool) or not isinstance(value, (int, timedelta)):
            raise TypeError(f"termination_grace_period must be an int (seconds) or a timedelta, got {value!r}")
        seconds = int(value.total_seconds()) if isinstance(value, timedelta) else value
        if seconds < 0:
            raise ValueError(f"termination_grace_period must be >= 0 seconds, got {seconds}")
        return replace(self, termination_grace_period_s=seconds)

    def allow_fuse(self, privileged: bool = False) -> PodTemplate:
        """Return a copy marked as needing FUSE mounts (the ``flyte.org/capability-fuse`` annotation)."""
        del privileged  # how Flyte grants FUSE on Kubernetes; nothing to grant to a Celery worker
        return self._with_capability("fuse")

    def allow_nested_sandboxing(self) -> PodTemplate:
        """Return a copy marked as needing nested sandboxes (``flyte.org/capability-nested-sandboxing``)."""
        return self._with_capability("nested-sandboxing")

    def _with_capability(self, name: str) -> PodTemplate:
        annotations = dict(self.annotations or {})
        annotations[f"{_CAPABILITY_ANNOTATION_PREFIX}{name}"] = "true"
        return replace(self, pod_spec=copy.deepcopy(self.pod_spec), annotations=annotations)
