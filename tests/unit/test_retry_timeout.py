from __future__ import annotations

import math
import pickle
from datetime import timedelta

import pytest

from flyte_celery._retry import Backoff, RetryStrategy, retry_strategy_from
from flyte_celery._timeout import Timeout, timeout_from

# --- Backoff -------------------------------------------------------------------------------------------------------


def test_backoff_accepts_seconds_or_timedelta() -> None:
    assert Backoff(1.5) == Backoff(base=timedelta(seconds=1.5))
    b = Backoff(base=10, factor=2, cap=60)
    assert (b.base, b.factor, b.cap) == (timedelta(seconds=10), 2.0, timedelta(seconds=60))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"base": -1}, "base"),
        ({"base": timedelta(seconds=-1)}, "base"),
        ({"base": 1, "factor": 0.5}, "factor"),
        ({"base": 1, "factor": math.nan}, "factor"),
        ({"base": 1, "factor": math.inf, "cap": 5}, "factor"),
        ({"base": 1, "factor": 2.0}, "cap"),
        ({"base": 1, "cap": -1}, "cap"),
        ({"base": math.inf}, "base"),
    ],
)
def test_backoff_rejects_bad_values(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Backoff(**kwargs)  # type: ignore[arg-type]


def test_backoff_rejects_bad_types() -> None:
    with pytest.raises(TypeError, match="base"):
        Backoff("1s")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="factor"):
        Backoff(1, factor=True)


def test_backoff_delays_grow_and_stop_at_the_cap() -> None:
    b = Backoff(base=timedelta(seconds=10), factor=2.0, cap=timedelta(minutes=5))
    assert [b.compute_delay(n).total_seconds() for n in range(7)] == [10, 20, 40, 80, 160, 300, 300]
    assert Backoff(3).compute_delay(50) == timedelta(seconds=3)
    assert b.compute_delay(10_000) == timedelta(minutes=5)  # base * factor**n overflows: the cap is the answer
    with pytest.raises(ValueError, match=">= 0"):
        b.compute_delay(-1)


# --- RetryStrategy -------------------------------------------------------------------------------------------------


def test_default_delay_matches_flyte_local_controller() -> None:
    # flyte/_internal/controllers/_local_controller.py: 0.5 s * 2 ** (attempt - 1) when no Backoff is set.
    strategy = RetryStrategy(5)
    assert [strategy.delay_before_attempt(a) for a in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert strategy.delay_before_attempt(5000) == math.inf


def test_delay_uses_the_backoff() -> None:
    strategy = RetryStrategy(3, Backoff(base=1, factor=3, cap=5))
    assert [strategy.delay_before_attempt(a) for a in (1, 2, 3)] == [1.0, 3.0, 5.0]
    assert RetryStrategy(2, backoff=0.25).delay_before_attempt(2) == 0.25
    assert RetryStrategy(2, backoff=timedelta(seconds=2)).backoff == Backoff(2)
    assert RetryStrategy(2, backoff=0).delay_before_attempt(1) == 0.0
    with pytest.raises(ValueError, match="attempt"):
        strategy.delay_before_attempt(0)


def test_retry_strategy_validation() -> None:
    assert RetryStrategy(0).max_attempts == 1
    assert RetryStrategy(count=4).max_attempts == 5
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match=r"RetryStrategy\.count"):
            RetryStrategy(bad)  # type: ignore[arg-type]


def test_retry_strategy_is_frozen_hashable_and_picklable() -> None:
    strategy = RetryStrategy(3, Backoff(1, 2, 10))
    assert pickle.loads(pickle.dumps(strategy)) == strategy
    assert hash(strategy) == hash(RetryStrategy(3, Backoff(1, 2, 10)))
    with pytest.raises(AttributeError):
        strategy.count = 4  # type: ignore[misc]


def test_retry_strategy_from() -> None:
    assert retry_strategy_from(None) == RetryStrategy(0)
    assert retry_strategy_from(3) == RetryStrategy(3)
    strategy = RetryStrategy(2, 1.0)
    assert retry_strategy_from(strategy) is strategy


@pytest.mark.parametrize(("value", "error"), [(-1, ValueError), (True, TypeError), (1.0, TypeError), ("2", TypeError)])
def test_retry_strategy_from_rejects_bad_values_naming_retries(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="retries"):
        retry_strategy_from(value)  # type: ignore[arg-type]


# --- Timeout -------------------------------------------------------------------------------------------------------


def test_timeout_normalises_bounds() -> None:
    t = Timeout(max_runtime=60, max_queued_time=timedelta(minutes=2), deadline=1.5)
    assert (t.max_runtime, t.max_queued_time, t.deadline) == (
        timedelta(seconds=60),
        timedelta(minutes=2),
        timedelta(seconds=1.5),
    )
    assert (t.max_runtime_s, t.max_queued_time_s, t.deadline_s) == (60.0, 120.0, 1.5)
    assert Timeout(60) == Timeout(timedelta(seconds=60))


def test_zero_and_none_mean_unlimited() -> None:
    t = Timeout(max_runtime=0, max_queued_time=timedelta(0), deadline=None)
    assert (t.max_runtime, t.max_queued_time, t.deadline) == (None, None, None)
    assert t.max_runtime_s is None
    assert t == Timeout()


@pytest.mark.parametrize("field", ["max_runtime", "max_queued_time", "deadline"])
def test_timeout_rejects_negative_and_bad_types_naming_the_field(field: str) -> None:
    for value, error in [(-1, ValueError), (timedelta(seconds=-5), ValueError), (math.nan, ValueError)]:
        with pytest.raises(error, match=field):
            Timeout(**{field: value})  # type: ignore[arg-type]
    for value in ("10", True):
        with pytest.raises(TypeError, match=field):
            Timeout(**{field: value})  # type: ignore[arg-type]


def test_timeout_from() -> None:
    assert timeout_from(None) == Timeout()
    assert timeout_from(0) == Timeout()
    assert timeout_from(30).max_runtime_s == 30.0
    assert timeout_from(2.5).max_runtime_s == 2.5
    assert timeout_from(timedelta(minutes=1)) == Timeout(max_runtime=60)
    full = Timeout(max_runtime=10, deadline=100)
    assert timeout_from(full) is full


@pytest.mark.parametrize(
    ("value", "error"), [(-1, ValueError), (-0.5, ValueError), (True, TypeError), ("1", TypeError)]
)
def test_timeout_from_rejects_bad_values(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="timeout"):
        timeout_from(value)  # type: ignore[arg-type]


def test_timeout_is_frozen_and_picklable() -> None:
    t = Timeout(max_runtime=5, deadline=50)
    assert pickle.loads(pickle.dumps(t)) == t
    with pytest.raises(AttributeError):
        t.deadline = None  # type: ignore[misc]
