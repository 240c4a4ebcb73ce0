"""File from sync tasks: new_remote + open_sync, download_sync, from_local_sync, from_existing_remote and passing
files between sync tasks (after flyte-sdk's `sync_file.py`)."""

from __future__ import annotations

import tempfile

import flyte_celery as flyte
from flyte_celery.io import File

env = flyte.TaskEnvironment("sync_file_examples")


@env.task
def create_new_remote_file(content: str) -> File:
    f = File.new_remote()
    with f.open_sync("wb") as fh:
        fh.write(content.encode("utf-8"))
    return f


@env.task
def read_file_sync(f: File) -> str:
    with f.open_sync("rb") as fh:
        return str(fh.read().decode("utf-8"))


@env.task
def download_file_sync(f: File) -> str:
    local_path = f.download_sync()
    with open(local_path, "rb") as fh:
        return fh.read().decode("utf-8")


@env.task
def upload_local_file_sync(content: str) -> File:
    with tempfile.NamedTemporaryFile(mode="w", delete=False, suffix=".txt") as tmp:
        tmp.write(content)
        tmp_path = tmp.name
    return File.from_local_sync(tmp_path)  # the local file is kept: see files_async.upload_local_file_async


@env.task
def create_from_existing_remote(remote_path: str) -> File:
    return File.from_existing_remote(remote_path)


@env.task
def check_file_exists(f: File) -> bool:
    return f.exists_sync()


@env.task
def copy_file_by_reference(f: File) -> File:
    return File(path=f.path)


@env.task
def process_file(file: File) -> str:
    """As flyte-sdk's `file_local.py`: a file the client uploaded, read in a task."""
    with file.open_sync("rb") as f:
        return f.read().decode("utf-8")


@env.task
def main() -> dict[str, object]:
    file1 = create_new_remote_file("Hello, Flyte Sync API!")
    file2 = upload_local_file_sync("Content from local file!")
    file3 = create_from_existing_remote(file1.path)
    copied = copy_file_by_reference(file2)
    return {
        "text": read_file_sync(file1),
        "exists": check_file_exists(file1),
        "missing_exists": check_file_exists(File.from_existing_remote(file1.path + ".missing")),
        "downloaded": download_file_sync(file1),
        "uploaded": read_file_sync(file2),
        "existing": read_file_sync(file3),
        "copied": read_file_sync(copied),
        "name": file2.name,
    }
