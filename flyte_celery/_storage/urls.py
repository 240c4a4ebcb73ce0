"""Storage URLs: joining them, telling local paths from object stores, and their protocol."""

from __future__ import annotations

from typing import Final

from fsspec.utils import get_protocol

# fsspec's names for the machine's own disk: plain paths and file:// URLs.
LOCAL_PROTOCOLS: Final = frozenset({"file", "local"})


def protocol_of(url: str) -> str:
    """The fsspec protocol of `url`: "s3" for `s3://b/k`, "file" for a plain path."""
    return str(get_protocol(url))


def is_local(url: str) -> bool:
    """True for plain paths and `file://` URLs: data that lives on this machine's disk."""
    return protocol_of(url) in LOCAL_PROTOCOLS


def join(base: str, *parts: str) -> str:
    """`base` and `parts` joined by single slashes: `join("s3://b/p/", "a", "/c.txt") == "s3://b/p/a/c.txt"`.

    Empty parts are skipped; a part may hold slashes of its own ("a/b"). Local paths are joined the same way, with
    "/" (POSIX paths).
    """
    pieces = [stripped for part in parts if (stripped := part.strip("/"))]
    if not pieces:
        return base
    if not base:
        return "/".join(pieces)
    if base.endswith("://"):
        return base + "/".join(pieces)
    return "/".join([base.rstrip("/"), *pieces])
