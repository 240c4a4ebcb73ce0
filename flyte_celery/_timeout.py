"""Wall-clock bounds of an action: ``Timeout`` and the ``timeout=`` shorthand.

Each bound is optional; ``None`` or zero means unlimited. ``max_runtime`` bounds one attempt while it runs,
``max_queued_time`` one attempt's wait before it starts, and ``deadline`` the whole action from when it is first
queued to when it ends, across all attempts. A bare number (seconds) or timedelta given as ``timeout=`` is
``max_runtime``, as in Flyte.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Union


def _bound(name: str, value: object) -> timedelta | None:
    """Check one bound and normalise it to a timedelta, or ``None`` for unlimited."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, timedelta)):
        raise TypeError(f"{name} must be a timedelta or a number of seconds, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    duration = value if isinstance(value, timedelta) else timedelta(seconds=value)
    if duration < timedelta(0):
        raise ValueError(f"{name} must be >= 0 (0 means unlimited), got {value!r}")
    return duration or None


def _seconds(duration: timedelta | None) -> float | None:
    return None if duration is None else duration.total_seconds()


@dataclass(frozen=True, init=False)
class Timeout:
    """Timeout bounds of a task; each is a timedelta or seconds, and ``None`` or ``0`` means unlimited.

    Bounds are stored as ``timedelta``, or ``None`` when unlimited: ``Timeout(60) == Timeout(timedelta(seconds=60))``.

    Args:
        max_runtime: How long one attempt may run.
        max_queued_time: How long one attempt may wait before it starts.
        deadline: How long the action may take from first being queued to finishing, across all attempts.
    """

    max_runtime: timedelta | None = None
    max_queued_time: timedelta | None = None
    deadline: timedelta | None = None

    def __init__(
        self,
        max_runtime: timedelta | float | None = None,
        max_queued_time: timedelta | float | None = None,
        deadline: timedelta | float | None = None,
    ) -> None:
        object.__setattr__(self, "max_runtime", _bound("Timeout.max_runtime", max_runtime))
        object.__setattr__(self, "max_queued_time", _bound("Timeout.max_queued_time", max_queued_time))
        object.__setattr__(self, "deadline", _bound("Timeout.deadline", deadline))

    @property
    def max_runtime_s(self) -> float | None:
        """``max_runtime`` in seconds, or ``None`` when unlimited."""
        return _seconds(self.max_runtime)

    @property
    def max_queued_time_s(self) -> float | None:
        """``max_queued_time`` in seconds, or ``None`` when unlimited."""
        return _seconds(self.max_queued_time)

    @property
    def deadline_s(self) -> float | None:
        """``deadline`` in seconds, or ``None`` when unlimited."""
        return _seconds(self.deadline)


TimeoutType = Union[Timeout, int, timedelta]


def timeout_from(value: int | float | timedelta | Timeout | None) -> Timeout:
    """Normalise a ``timeout=`` argument to a ``Timeout``; a number or timedelta is ``max_runtime``.

    Raises:
        TypeError: If ``value`` is of another type (a bool is rejected).
        ValueError: If ``value`` is negative or not finite.
    """
    if isinstance(value, Timeout):
        return value
    return Timeout(max_runtime=_bound("timeout", value))
