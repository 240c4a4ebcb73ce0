"""What a cache entry holds: when it was written, then the serialized result; stores only see the bytes."""

from __future__ import annotations

import struct
import time
from datetime import timedelta
from typing import Final

ENTRY_HEADER: Final = struct.Struct("!4sd")
ENTRY_MAGIC: Final = b"fce1"


def encode_entry(payload: bytes, written_at: float | None = None) -> bytes:
    return ENTRY_HEADER.pack(ENTRY_MAGIC, time.time() if written_at is None else written_at) + payload


def decode_entry(data: bytes, max_age: timedelta | None) -> bytes | None:
    """The payload of an entry, or None if it is not an entry of this format or older than `max_age`."""
    if len(data) < ENTRY_HEADER.size:
        return None
    magic, written_at = ENTRY_HEADER.unpack_from(data)
    if magic != ENTRY_MAGIC:
        return None
    if max_age and time.time() - written_at > max_age.total_seconds():
        return None
    return data[ENTRY_HEADER.size :]
