"""What `File` and `Dir` share: data passed by reference, as a path with a name, a format label and a cache key."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, Optional

from pydantic import BaseModel, model_validator


class PathReference(BaseModel):
    """A path (local, or a URL) with `name` (defaulting to its last part), `format` and `hash` (a content cache key)."""

    path: str
    name: Optional[str] = None
    format: str = ""
    hash: Optional[str] = None

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("name") is None and data.get("path"):
            return {**data, "name": PurePosixPath(str(data["path"])).name}
        return data

    def __class_getitem__(cls, params: Any) -> Any:
        # The parameter documents the format: `File[X]` is `File`, so every value pickles by its class name.
        return cls
