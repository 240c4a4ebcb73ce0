"""Retry policy of a task: ``RetryStrategy`` (how many user retries) and ``Backoff`` (how long between them).

``count`` retries means up to ``count + 1`` attempts. A task that raises ``flyte_celery.errors.NonRecoverableError``
is not retried, whatever ``count`` says (that check belongs to the controllers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

# Without a Backoff, Flyte's local controller sleeps 0.5 s before the first retry and doubles it for each next one,
# with no cap. We match it so a task retries on the same schedule in every mode.
DEFAULT_RETRY_DELAY_S = 0.5
DEFAULT_RETRY_DELAY_FACTOR = 2.0


def _duration(name: str, value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a timedelta or a number of seconds, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return timedelta(seconds=value)


@dataclass(frozen=True, init=False)
class Backoff:
    """Exponential delay between user retries: the n-th retry (0-indexed) waits ``min(base * factor**n, cap)``.

    Args:
        base: The delay before the first retry (a timedelta or seconds); must be >= 0.
        factor: The multiplier per retry; ``1.0`` keeps the delay constant. Must be finite and >= 1.
        cap: The largest delay (a timedelta or seconds, >= 0); required when ``factor > 1``.
    """

    base: timedelta
    factor: float = 1.0
    cap: timedelta | None = None

    def __init__(self, base: timedelta | float, factor: float = 1.0, cap: timedelta | float | None = None) -> None:
        base_td = _duration("Backoff.base", base)
        cap_td = None if cap is None else _duration("Backoff.cap", cap)
        if base_td < timedelta(0):
            raise ValueError(f"Backoff.base must be >= 0, got {base_td}")
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor):
            raise ValueError(f"Backoff.factor must be a finite number, got {factor!r}")
        if factor < 1.0:
            raise ValueError(f"Backoff.factor must be >= 1.0, got {factor}")
        if cap_td is not None and cap_td < timedelta(0):
            raise ValueError(f"Backoff.cap must be >= 0, got {cap_td}")
        if factor > 1.0 and cap_td is None:
            raise ValueError("Backoff.cap is required when factor > 1.0, so that the delay cannot grow without bound")
        object.__setattr__(self, "base", base_td)
        object.__setattr__(self, "factor", float(factor))
        object.__setattr__(self, "cap", cap_td)

    def compute_delay(self, n: int) -> timedelta:
        """The delay before the n-th retry, counted from 0 (Flyte's method)."""
        if n < 0:
            raise ValueError(f"retry index must be >= 0, got {n}")
        try:
            delay = self.base * (self.factor**n)
        except OverflowError:
            # Only reachable with factor > 1, which requires a cap: the uncapped delay is far past it.
            assert self.cap is not None
            return self.cap
        return delay if self.cap is None else min(delay, self.cap)


@dataclass(frozen=True, init=False)
class RetryStrategy:
    """How many times a failed task is retried, and how long to wait before each retry.

    Args:
        count: The number of user retries; ``0`` disables retries.
        backoff: A ``Backoff``, or a timedelta / seconds for a constant delay. ``None`` uses Flyte's local default:
            0.5 s, doubling with each retry.
    """

    count: int
    backoff: Backoff | None = None

    def __init__(self, count: int, backoff: Backoff | float | timedelta | None = None) -> None:
        if isinstance(count, bool) or not isinstance(count, int):
            raise ValueError(f"RetryStrategy.count must be an int (a retry count), got {count!r}")
        if count < 0:
            raise ValueError(f"RetryStrategy.count must be >= 0, got {count}")
        if backoff is not None and not isinstance(backoff, Backoff):
            backoff = Backoff(base=backoff)
        object.__setattr__(self, "count", count)
        object.__setattr__(self, "backoff", backoff)

    @property
    def max_attempts(self) -> int:
        """The number of attempts including the first: ``count + 1``."""
        return self.count + 1

    def delay_before_attempt(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1 is the first retry, i.e. the second attempt).

        Returns ``math.inf`` if the default doubling delay no longer fits in a float (after ~1,000 retries).
        """
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1 (1 is the first retry), got {attempt}")
        if self.backoff is not None:
            return self.backoff.compute_delay(attempt - 1).total_seconds()
        try:
            return DEFAULT_RETRY_DELAY_S * DEFAULT_RETRY_DELAY_FACTOR ** (attempt - 1)
        except OverflowError:
            return math.inf


def retry_strategy_from(value: int | RetryStrategy | None) -> RetryStrategy:
    """Normalise a ``retries=`` argument to a ``RetryStrategy``; ``None`` means no retries.

    Raises:
        TypeError: If ``value`` is not an int, a ``RetryStrategy`` or ``None`` (a bool is rejected).
        ValueError: If ``value`` is a negative int.
    """
    if value is None:
        return RetryStrategy(0)
    if isinstance(value, RetryStrategy):
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"retries must be an int (a retry count) or a RetryStrategy, got {value!r}")
    if value < 0:
        raise ValueError(f"retries must be >= 0, got {value}")
    return RetryStrategy(value)
