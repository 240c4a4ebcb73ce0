"""Dir from sync tasks: from_local_sync inside a task, exists_sync, list_files_sync, walk_sync with a file
pattern and a depth, get_file_sync, reading files, and a directory the client uploads (after flyte-sdk's
`dir_sync.py` and `dir_local.py`)."""

from __future__ import annotations

import os
import tempfile

import flyte_celery as flyte
from flyte_celery.io import Dir, File

env = flyte.TaskEnvironment("dir_sync_examples")


def create_test_local_directory() -> str:
    temp_dir = tempfile.mkdtemp(prefix="flyte_dir_sync_example_")
    with open(os.path.join(temp_dir, "file1.txt"), "w") as f:
        f.write("Content of file 1")
    with open(os.path.join(temp_dir, "file2.csv"), "w") as f:
        f.write("a,b\n1,2\n")
    sub_dir = os.path.join(temp_dir, "subdir")
    os.makedirs(sub_dir)
    with open(os.path.join(sub_dir, "file3.txt"), "w") as f:
        f.write("Content of file 3 in subdirectory")
    return temp_dir


@env.task
def create_reference_to_existing_remote(remote_path: str) -> Dir:
    return Dir.from_existing_remote(remote_path)


@env.task
def check_directory_exists(d: Dir) -> bool:
    return d.exists_sync()


@env.task
def list_files_in_directory_sync(d: Dir) -> list[File]:
    return d.list_files_sync()


@env.task
def walk_directory_with_pattern_sync(d: Dir) -> list[File]:
    return list(d.walk_sync(recursive=True, file_pattern="*.txt"))


@env.task
def walk_directory_with_max_depth_sync(d: Dir) -> list[File]:
    return list(d.walk_sync(recursive=True, max_depth=2))


@env.task
def get_specific_file_sync(d: Dir, file_name: str) -> File | None:
    return d.get_file_sync(file_name)


@env.task
def count_files_by_extension(d: Dir) -> dict[str, int]:
    extension_counts: dict[str, int] = {}
    for file in d.walk_sync(recursive=True):
        assert file.name is not None
        _, ext = os.path.splitext(file.name)
        extension_counts[ext] = extension_counts.get(ext, 0) + 1
    return extension_counts


@env.task
def search_files_by_content(d: Dir, search_term: str) -> list[str]:
    matching_files: list[str] = []
    for file in d.walk_sync(recursive=True):
        with file.open_sync("rb") as f:
            if search_term.lower() in f.read().decode("utf-8").lower():
                matching_files.append(str(file.name))
    return sorted(matching_files)


@env.task
def download_directory(d: Dir) -> list[str]:
    local_path = d.download_sync()
    return sorted(
        os.path.relpath(os.path.join(top, name), local_path) for top, _, names in os.walk(local_path) for name in names
    )


@env.task
def main() -> dict[str, object]:
    local_dir_path = create_test_local_directory()
    remote_dir = Dir.from_local_sync(local_dir_path)
    dir_ref = create_reference_to_existing_remote(remote_dir.path)
    specific = get_specific_file_sync(remote_dir, "file1.txt")
    return {
        "exists": check_directory_exists(dir_ref),
        "listed": sorted(str(f.name) for f in list_files_in_directory_sync(remote_dir)),
        "txt": sorted(str(f.name) for f in walk_directory_with_pattern_sync(remote_dir)),
        "depth_2": sorted(str(f.name) for f in walk_directory_with_max_depth_sync(remote_dir)),
        "specific": specific.name if specific else None,
        "extensions": count_files_by_extension(remote_dir),
        "matching": search_files_by_content(remote_dir, "content"),
        "downloaded": download_directory(remote_dir),
    }


@env.task
def count_files(d: Dir) -> int:
    """As flyte-sdk's `dir_local.py`: a directory the client uploaded, walked in a task."""
    return sum(1 for _ in d.walk_sync())
