"""File-system helpers for programs whose children must observe each other across processes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Final

POLL_INTERVAL_S: Final = 0.01
BARRIER_DEADLINE_S: Final = 5.0
RUNNING_PREFIX: Final = "running-"


def running_count(folder: str) -> int:
    """How many probes currently hold a `running-*` marker in `folder`."""
    return sum(1 for _ in Path(folder).glob(f"{RUNNING_PREFIX}*"))


def append_line(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(line + "\n")


def create_once(path: str) -> bool:
    """Create `path`; True if this call created it, False if it already existed."""
    try:
        Path(path).touch(exist_ok=False)
    except FileExistsError:
        return False
    return True


def read_lines(path: str) -> list[str]:
    file = Path(path)
    return file.read_text(encoding="utf-8").splitlines() if file.exists() else []


async def wait_for_count(folder: str, at_least: int, deadline_s: float = BARRIER_DEADLINE_S) -> int:
    """Poll until `at_least` probes run at once in `folder`, or the deadline; returns the largest count seen."""
    end = time.monotonic() + deadline_s
    seen = running_count(folder)
    while seen < at_least and time.monotonic() < end:
        await asyncio.sleep(POLL_INTERVAL_S)
        seen = max(seen, running_count(folder))
    return seen


def wait_for_file(path: str, deadline_s: float = BARRIER_DEADLINE_S * 2) -> bool:
    """Blocking poll (for sync task bodies) until `path` exists or the deadline passes; True if it exists."""
    end = time.monotonic() + deadline_s
    while not Path(path).exists():
        if time.monotonic() >= end:
            return False
        time.sleep(POLL_INTERVAL_S)
    return True
