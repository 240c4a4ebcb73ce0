"""Dir from async tasks: from_local, exists, list_files, walk (recursive, flat, max_depth), get_file, reading the
files, download, from_existing_remote, a cache key, and files read concurrently (after flyte-sdk's `dir.py`)."""

from __future__ import annotations

import asyncio
import os
import tempfile

import flyte_celery as flyte
from flyte_celery.io import Dir, File

env = flyte.TaskEnvironment(name="dir_examples")


def create_test_local_directory() -> str:
    temp_dir = tempfile.mkdtemp(prefix="flyte_dir_example_")
    with open(os.path.join(temp_dir, "file1.txt"), "w") as f:
        f.write("Content of file 1")
    with open(os.path.join(temp_dir, "file2.txt"), "w") as f:
        f.write("Content of file 2")
    sub_dir = os.path.join(temp_dir, "subdir")
    os.makedirs(sub_dir)
    with open(os.path.join(sub_dir, "file3.txt"), "w") as f:
        f.write("Content of file 3 in subdirectory")
    return temp_dir


@env.task
async def upload_directory_from_local() -> Dir:
    local_path = await asyncio.to_thread(create_test_local_directory)
    uploaded_dir = await Dir.from_local(local_path)
    print(f"Uploaded local directory {local_path} to remote: {uploaded_dir.path}")
    return uploaded_dir


@env.task
async def create_reference_to_existing_remote(remote_path: str) -> Dir:
    return Dir.from_existing_remote(remote_path)


@env.task
async def check_directory_exists(d: Dir) -> bool:
    return await d.exists()


@env.task
async def list_files_in_directory(d: Dir) -> list[File]:
    return await d.list_files()


@env.task
async def walk_directory_async(d: Dir) -> list[File]:
    return [file async for file in d.walk(recursive=True)]


@env.task
async def walk_directory_non_recursive(d: Dir) -> list[File]:
    return [file async for file in d.walk(recursive=False)]


@env.task
async def walk_directory_with_max_depth(d: Dir) -> list[File]:
    return [file async for file in d.walk(recursive=True, max_depth=1)]


@env.task
async def get_specific_file(d: Dir, file_name: str) -> File | None:
    return await d.get_file(file_name)


@env.task
async def read_files_in_directory(d: Dir) -> dict[str, str]:
    file_contents = {}
    async for file in d.walk(recursive=False):
        assert file.name is not None
        if file.name.endswith(".txt"):
            async with file.open("rb") as f:
                file_contents[file.name] = bytes(await f.read()).decode("utf-8")
    return file_contents


@env.task
async def download_directory_async(d: Dir) -> list[str]:
    local_path = await d.download()
    return await asyncio.to_thread(relative_files, local_path)


def relative_files(root: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(top, name), root) for top, _, names in os.walk(root) for name in names)


@env.task
async def download_directory_to_specific_path(d: Dir) -> bool:
    temp_dir = tempfile.mkdtemp(prefix="flyte_downloaded_dir_")
    local_path = await d.download(temp_dir)
    return "subdir/file3.txt" in await asyncio.to_thread(relative_files, local_path)


@env.task
async def create_directory_with_cache_key() -> Dir:
    temp_dir = tempfile.mkdtemp(prefix="flyte_cache_key_example_")
    with open(os.path.join(temp_dir, "cached_file.txt"), "w") as f:  # noqa: ASYNC230
        f.write("This directory has a specific cache key")
    return await Dir.from_local(temp_dir, dir_cache_key="my_custom_cache_key_123")


@env.task
async def process_files_in_parallel(d: Dir) -> dict[str, int]:
    async def process_file(file: File) -> tuple[str, int]:
        async with file.open("rb") as f:
            content = await f.read()
            return str(file.name), len(content)

    files = [file async for file in d.walk(recursive=True)]
    return dict(await asyncio.gather(*(process_file(file) for file in files)))


@env.task
async def main() -> dict[str, object]:
    remote_dir = await upload_directory_from_local()
    specific = await get_specific_file(remote_dir, "file1.txt")
    missing = await get_specific_file(remote_dir, "nope.txt")
    dir_ref = await create_reference_to_existing_remote(remote_dir.path)
    cached_dir = await create_directory_with_cache_key()
    return {
        "exists": await check_directory_exists(remote_dir),
        "listed": sorted(str(f.name) for f in await list_files_in_directory(remote_dir)),
        "walked": sorted(str(f.name) for f in await walk_directory_async(remote_dir)),
        "flat": sorted(str(f.name) for f in await walk_directory_non_recursive(remote_dir)),
        "depth_1": sorted(str(f.name) for f in await walk_directory_with_max_depth(remote_dir)),
        "specific": specific.name if specific else None,
        "missing": missing,
        "contents": await read_files_in_directory(remote_dir),
        "downloaded": await download_directory_async(remote_dir),
        "downloaded_to_path": await download_directory_to_specific_path(remote_dir),
        "reference_contents": await read_files_in_directory(dir_ref),
        "cache_key": cached_dir.hash,
        "sizes": await process_files_in_parallel(remote_dir),
        "dir": remote_dir,
    }
