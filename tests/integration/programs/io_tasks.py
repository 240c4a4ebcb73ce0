"""Programs for the File, Dir and DataFrame tests: tasks that write data in one action and read it in another.

The same tasks run in local mode (`test_io_local.py`) and on workers (`test_io_remote.py`); where a test must know
which process did what, tasks return their pid. `write_on_writer` runs on a queue of its own, so a second worker
(and only it) serves it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import tempfile
from pathlib import Path

import flyte_celery as flyte
from flyte_celery.io import DataFrame, Dir, File

env = flyte.TaskEnvironment("io_tasks")
WRITER_QUEUE = "flyte-celery-tests-io-writer"


class Sha256:
    """A `HashMethod` accumulating a SHA-256 of everything it is fed."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()

    def update(self, data: object, /) -> None:
        self._digest.update(data)  # type: ignore[arg-type]

    def result(self) -> str:
        return self._digest.hexdigest()


# --- File ----------------------------------------------------------------------------------------------------------


@env.task
async def write_text(text: str, name: str) -> File:
    file = File.new_remote(name)
    async with file.open("wb") as stream:
        await stream.write(text.encode())
    return file


@env.task
def write_text_sync(text: str) -> File:
    file = File.new_remote("sync.txt")
    with file.open_sync("wb") as stream:
        stream.write(text.encode())
    return file


@env.task
async def read_text(file: File) -> str:
    async with file.open("rb") as stream:
        return bytes(await stream.read()).decode()


@env.task
def read_text_sync(file: File) -> str:
    with file.open_sync("rb") as stream:
        return bytes(stream.read()).decode()


@env.task
async def read_lines(file: File) -> list[str]:
    """Streams the file line by line (`async for`), and in 4-byte reads."""
    lines = []
    async with file.open("rb", block_size=5 * 2**20) as stream:
        async for line in stream:
            lines.append(bytes(line).decode())
    pieces = []
    async with file.open("rb") as stream:
        while piece := await stream.read(4):
            pieces.append(piece)
    assert b"".join(pieces).decode() == "".join(lines)
    return lines


@env.task
async def download_text(file: File) -> str:
    local = await file.download()
    assert await file.exists()
    return await asyncio.to_thread(Path(local).read_text)


@env.task
async def file_round_trip(text: str) -> list[str]:
    """One task writes (async and sync), others read (async, sync, lines, download)."""
    written = await write_text(text, "round-trip.txt")
    written_sync = await write_text_sync.aio(text + "!")
    return [
        await read_text(written),
        await read_text_sync.aio(written),
        "".join(await read_lines(written)),
        await download_text(written),
        await read_text(written_sync),
    ]


@env.task
async def upload_local(text: str) -> File:
    """`File.from_local` inside a task (no destination): kept in place on a local raw data path, else uploaded."""
    folder = Path(tempfile.mkdtemp(prefix="io-tasks-"))
    (folder / "local.txt").write_text(text)
    return await File.from_local(folder / "local.txt")


@env.task
async def upload_local_hashed(text: str) -> File:
    folder = Path(tempfile.mkdtemp(prefix="io-tasks-"))
    (folder / "hashed.txt").write_text(text)
    return await File.from_local(folder / "hashed.txt", hash_method=Sha256())


@env.task
async def write_hashed(text: str) -> File:
    """`new_remote` with a `HashMethod`: the hash is computed from the bytes written through `open`."""
    file = File.new_remote("hashed.txt", hash_method=Sha256())
    async with file.open("wb") as stream:
        await stream.write(text[:3].encode())
        await stream.write(text[3:].encode())
    return file


@env.task
async def write_named(text: str) -> list[str]:
    """`named_remote` twice in one action gives one path; returns it, the action's name and the run base dir."""
    file = File.named_remote("named.txt")
    async with file.open("wb") as stream:
        await stream.write(text.encode())
    again = File.named_remote("named.txt")
    assert again.path == file.path
    context = flyte.ctx()
    assert context is not None
    return [file.path, context.action.name, context.run_base_dir, await read_text(again)]


@env.task(cache="auto")
async def stamp_file(file: File) -> str:
    """A fresh token each time it executes: equal tokens mean the cache answered."""
    return secrets.token_hex(8)


# --- Dir -----------------------------------------------------------------------------------------------------------


@env.task
async def make_dir(files: dict[str, str]) -> Dir:
    folder = Path(tempfile.mkdtemp(prefix="io-tasks-")) / "made"
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return await Dir.from_local(folder)


@env.task
async def read_dir(directory: Dir) -> dict[str, str]:
    """Every file under the directory, by path relative to it (async walk)."""
    found = {}
    async for file in directory.walk():
        relative = file.path[len(directory.path.rstrip("/")) + 1 :]
        found[relative] = await read_text(file)
    return found


@env.task
def inspect_dir(directory: Dir) -> list[object]:
    """The blocking API: top-level names, a pattern walk, get_file, exists, and a download's tree."""
    top = sorted(file.name or "" for file in directory.list_files_sync())
    texts = sorted(file.name or "" for file in directory.walk_sync(file_pattern="*.txt"))
    hit = directory.get_file_sync("a.txt")
    miss = directory.get_file_sync("absent.txt")
    local = Path(directory.download_sync(Path(tempfile.mkdtemp(prefix="io-tasks-")) / "copy"))
    tree = sorted(path.relative_to(local).as_posix() for path in local.rglob("*") if path.is_file())
    return [top, texts, hit is not None and hit.exists_sync(), miss is None, directory.exists_sync(), tree]


@env.task
async def dir_round_trip(files: dict[str, str]) -> list[object]:
    directory = await make_dir(files)
    top = sorted(file.name or "" for file in await directory.list_files())
    got = await directory.get_file("a.txt")
    return [await read_dir(directory), top, got is not None, await directory.exists(), await inspect_dir.aio(directory)]


@env.task
async def fill_new_dir(names: list[str]) -> Dir:
    """`Dir.new_remote`, filled by writing Files under its path."""
    directory = Dir.new_remote("filled")
    for name in names:
        file = File(path=f"{directory.path}/{name}")
        async with file.open("wb") as stream:
            await stream.write(name.encode())
    return directory


# --- DataFrame -----------------------------------------------------------------------------------------------------


@env.task
async def make_frame(n: int) -> DataFrame:
    import pandas as pd

    return await DataFrame.from_local(pd.DataFrame({"x": list(range(n)), "label": [f"r{i}" for i in range(n)]}))


@env.task
async def frame_sum(frame: DataFrame) -> int:
    import pandas as pd

    table = await frame.open(pd.DataFrame).all()
    return int(table["x"].sum())


@env.task
def frame_rows_sync(frame: DataFrame) -> int:
    import pyarrow as pa

    return int(frame.open(pa.Table).all_sync().num_rows)


@env.task
async def frame_chunk_rows(frame: DataFrame) -> int:
    import pandas as pd

    rows = 0
    async for chunk in frame.open(pd.DataFrame).iter():
        rows += len(chunk)
    return rows


@env.task
async def wrap_frame(n: int) -> DataFrame:
    import pandas as pd

    return DataFrame.wrap_df(pd.DataFrame({"x": list(range(n))}))


@env.task
async def raw_frame(n: int) -> DataFrame:
    """Returns a pandas DataFrame where a DataFrame is declared: the type engine wraps it, as Flyte's does."""
    import pandas as pd

    return pd.DataFrame({"x": list(range(n))})  # type: ignore[return-value]


@env.task
async def frame_round_trip(n: int) -> list[int]:
    stored = await make_frame(n)
    wrapped = await wrap_frame(n)
    return [
        await frame_sum(stored),
        await frame_rows_sync.aio(stored),
        await frame_chunk_rows(stored),
        await frame_sum(wrapped),
    ]


@env.task(cache="auto")
async def stamp_frame(frame: DataFrame) -> str:
    return secrets.token_hex(8)


# --- across workers ------------------------------------------------------------------------------------------------


@env.task(queue=WRITER_QUEUE)
async def write_on_writer(text: str) -> tuple[File, int]:
    file = File.new_remote("cross-worker.txt")
    async with file.open("wb") as stream:
        await stream.write(text.encode())
    return file, os.getpid()


@env.task
async def read_with_pid(file: File) -> tuple[str, int]:
    async with file.open("rb") as stream:
        return bytes(await stream.read()).decode(), os.getpid()


@env.task
async def cross_worker(text: str) -> tuple[File, int, str, int]:
    """The writer's queue is served by another worker than this one's: the file crosses processes."""
    file, writer_pid = await write_on_writer(text)
    content, reader_pid = await read_with_pid(file)
    return file, writer_pid, content, reader_pid
