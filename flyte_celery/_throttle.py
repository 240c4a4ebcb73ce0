"""Throttles for things that repeat during an outage: log lines and reconnect attempts."""

from __future__ import annotations

import time
from typing import Final

LOG_INTERVAL_S: Final = 5.0  # a repeating problem is logged at most once per this many seconds per process
BACKOFF_FIRST_S: Final = 0.1
BACKOFF_MAX_S: Final = 5.0


class LogThrottle:
    """Lets a repeating log line through up to `burst` times per `interval_s`, and holds back the rest."""

    def __init__(self, interval_s: float = LOG_INTERVAL_S, burst: int = 1) -> None:
        self.interval_s = interval_s
        self.burst = burst
        self._window_ends = 0.0
        self._let_through = 0
        self._held = 0

    def ready(self) -> int | None:
        """How many lines were held back since the last one let through, if this one may go; else None."""
        now = time.monotonic()
        if now >= self._window_ends:
            self._window_ends, self._let_through = now + self.interval_s, 0
        if self._let_through >= self.burst:
            self._held += 1
            return None
        self._let_through += 1
        held, self._held = self._held, 0
        return held


class Backoff:
    """Delays between retries: doubling from `first_s` up to `max_s`, back to `first_s` after a success."""

    def __init__(self, first_s: float = BACKOFF_FIRST_S, max_s: float = BACKOFF_MAX_S) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self._next_s = first_s

    def next_delay(self) -> float:
        delay = self._next_s
        self._next_s = min(self._next_s * 2, self.max_s)
        return delay

    def reset(self) -> None:
        self._next_s = self.first_s
