"""File from async tasks: new_remote, open, download, from_local, from_existing_remote, named_remote, streaming,
overwriting a file in place and passing files between tasks (after flyte-sdk's `file.py` and
`overwrite_existing_file.py`)."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile

import flyte_celery as flyte
from flyte_celery.io import File

env = flyte.TaskEnvironment(name="file_examples")


@env.task
async def create_new_remote_file(content: str) -> File:
    f = File.new_remote()
    async with f.open("wb") as fh:
        await fh.write(content.encode("utf-8"))
    print(f"Created new remote file at: {f.path}")
    return f


@env.task
async def read_file_async(f: File) -> str:
    async with f.open("rb") as fh:
        contents = bytes(await fh.read())
        return contents.decode("utf-8")


@env.task
async def download_file_async(f: File) -> str:
    local_path = await f.download()
    print(f"Downloaded file to: {local_path}")
    return await asyncio.to_thread(_read_text, local_path)


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


@env.task
async def upload_local_file_async(content: str) -> File:
    with tempfile.NamedTemporaryFile(mode="w", delete=False, suffix=".txt") as tmp:
        tmp.write(content)
        tmp_path = tmp.name
    # Kept, unlike flyte-sdk's example, which deletes it: a task whose raw data path is on this disk (local mode)
    # gets a File of the local file itself, in Flyte as here, and main() reads it back.
    uploaded = await File.from_local(tmp_path)
    print(f"Uploaded local file {tmp_path} to remote: {uploaded.path}")
    return uploaded


@env.task
async def create_from_existing_remote(remote_path: str) -> File:
    return File.from_existing_remote(remote_path)


@env.task
async def check_file_exists_sync(f: File) -> bool:
    return f.exists_sync()


@env.task
async def copy_file_by_reference(f: File) -> File:
    return File(path=f.path)


@env.task
async def file_properties(f: File) -> dict[str, str | None]:
    return {"path": f.path, "name": f.name, "format": f.format, "hash": f.hash}


@env.task
async def streaming_write(content: str) -> File:
    f = File.new_remote()
    async with f.open("wb") as fh:
        data = content.encode("utf-8")
        chunk_size = 10
        for i in range(0, len(data), chunk_size):
            await fh.write(data[i : i + chunk_size])
    return f


@env.task
async def streaming_read(f: File) -> str:
    parts = []
    async with f.open("rb", block_size=10) as fh:
        while True:
            chunk = await fh.read()
            if not chunk:
                break
            parts.append(chunk)
    return b"".join(parts).decode("utf-8")


@env.task
async def create_named_file(file_name: str, content: str) -> File:
    f = File.new_remote(file_name=file_name)
    async with f.open("wb") as fh:
        await fh.write(content.encode("utf-8"))
    return f


@env.task
async def overwrite_existing_file(remote_path: str, new_content: str) -> File:
    f = File.from_existing_remote(remote_path)
    async with f.open("wb") as fh:
        await fh.write(new_content.encode("utf-8"))
    return f


@env.task
async def write_named_remote(content: str) -> File:
    f: File = File.named_remote("checkpoint.txt")
    async with f.open("w") as fh:
        await fh.write(content)
    return f


class Sha256Accumulator:
    """A `HashMethod`: fed every byte written through `open`, its result becomes the file's cache key."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, data: memoryview, /) -> None:
        self._hash.update(data)

    def result(self) -> str:
        return self._hash.hexdigest()


@env.task
async def hashed_file(content: str) -> File:
    f = File.new_remote("hashed.bin", hash_method=Sha256Accumulator())
    async with f.open("wb") as fh:
        await fh.write(content.encode("utf-8"))
    return f


@env.task
async def files_in_a_list(contents: list[str]) -> list[File]:
    return list(await asyncio.gather(*(create_new_remote_file(text) for text in contents)))


@env.task
async def main() -> dict[str, object]:
    file1 = await create_new_remote_file("Hello, Flyte Async API!")
    text = await read_file_async(file1)
    exists = await check_file_exists_sync(file1)
    downloaded = await download_file_async(file1)
    file2 = await upload_local_file_async("Content from local file!")
    file3 = await create_from_existing_remote(file1.path)
    copied = await copy_file_by_reference(file2)
    properties = await file_properties(file2)
    streamed = await streaming_write("This is streaming content that will be written in chunks!")
    streamed_text = await streaming_read(streamed)
    named = await create_named_file("my_data.txt", "Original content - version 1")
    updated = await overwrite_existing_file(named.path, "Updated content - version 2")
    checkpoint = await write_named_remote("attempt 1")
    hashed = await hashed_file("content to hash")
    listed = await files_in_a_list(["a", "b", "c"])
    return {
        "text": text,
        "exists": exists,
        "downloaded": downloaded,
        "uploaded": await read_file_async(file2),
        "uploaded_name": file2.name,
        "existing": await read_file_async(file3),
        "copied": await read_file_async(copied),
        "properties": properties,
        "streamed": streamed_text,
        "named_path": named.path,
        "updated_path": updated.path,
        "original_ref_after_overwrite": await read_file_async(named),
        "checkpoint": await read_file_async(checkpoint),
        "checkpoint_path": checkpoint.path,
        "hash": hashed.hash,
        "listed": [await read_file_async(f) for f in listed],
        "file": file1,
    }
