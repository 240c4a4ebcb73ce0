"""Checkpoints: state an action saves so that its next attempt, or the worker that takes it over, can resume.

`ctx().checkpoint` is one object in storage per action, `<raw_data_path>/<action>/checkpoint`, the same for every
attempt: `save` replaces it, `load` fetches the latest into a local directory. Bytes and files are stored as they
are; a directory as a gzip tar. (Flyte keeps a checkpoint per attempt and hands the previous one on; with one per
action, a worker that takes an action over finds it too.)
"""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
import weakref
from pathlib import Path
from typing import Final

from flyte_celery._syncify import syncify

PAYLOAD_NAME: Final = "payload"
CHECKPOINT_NAME: Final = "checkpoint"
_FILE: Final = b"F"  # the stored object: one kind byte, then the bytes or the gzip tar of a directory
_DIRECTORY: Final = b"D"


class Checkpoint:
    """The checkpoint of one action.

    Attributes:
        destination: Where it is stored (a storage URL or a local path).
        path: A local directory that `load` fills (made on first use, removed with this object).
    """

    def __init__(self, destination: str) -> None:
        self.destination = destination
        self._path: Path | None = None

    @property
    def path(self) -> Path:
        if self._path is None:
            self._path = Path(tempfile.mkdtemp(prefix="flyte-celery-checkpoint-"))
            weakref.finalize(self, shutil.rmtree, self._path, True)  # gone with the context it belongs to
        return self._path

    @syncify
    async def load(self) -> Path | None:
        """Fetch the latest checkpoint: the path of the saved file (or of the directory a saved directory was
        unpacked into), or None when nothing was saved yet."""
        from flyte_celery._storage import exists, get_bytes

        if not await exists(self.destination):
            return None
        return self._unpack(await get_bytes(self.destination))

    def load_sync(self) -> Path | None:
        """`load` without an event loop."""
        from flyte_celery._storage import exists_sync, get_bytes_sync

        if not exists_sync(self.destination):
            return None
        return self._unpack(get_bytes_sync(self.destination))

    @syncify
    async def save(self, data: bytes | str | Path) -> None:
        """Store `data` (bytes, or the path of a file or a directory) as this action's checkpoint."""
        from flyte_celery._storage import put_bytes

        await put_bytes(self.destination, _packed(data))

    def save_sync(self, data: bytes | str | Path) -> None:
        """`save` without an event loop."""
        from flyte_celery._storage import put_bytes_sync

        put_bytes_sync(self.destination, _packed(data))

    def _unpack(self, blob: bytes) -> Path:
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True)
        kind, data = blob[:1], blob[1:]
        if kind != _DIRECTORY:
            target = self.path / PAYLOAD_NAME
            target.write_bytes(data)
            return target
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            _extract_safely(tar, self.path)
        return self.path

    def __repr__(self) -> str:
        return f"Checkpoint({self.destination!r})"


def _packed(data: bytes | str | Path) -> bytes:
    if isinstance(data, bytes):
        return _FILE + data
    source = Path(data)
    if not source.exists():
        raise FileNotFoundError(f"checkpoint source {source} does not exist")
    if source.is_file():
        return _FILE + source.read_bytes()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for child in sorted(source.iterdir()):
            tar.add(child, arcname=child.name)
    return _DIRECTORY + buffer.getvalue()


def _extract_safely(tar: tarfile.TarFile, destination: Path) -> None:
    # What storage hands back is not trusted to stay inside the directory: no absolute paths, no "..", no links.
    if hasattr(tarfile, "data_filter"):
        tar.extractall(destination, filter="data")
        return
    for member in tar.getmembers():
        if member.name.startswith("/") or ".." in Path(member.name).parts or member.issym() or member.islnk():
            raise ValueError(f"checkpoint archive member {member.name!r} would leave its directory")
    tar.extractall(destination)
