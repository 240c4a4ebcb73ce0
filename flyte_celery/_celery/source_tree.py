"""The source tree of `copy_style="all"`: every file under the root directory that `.gitignore` and `.flyteignore`
files (at any level) and the standard ignores leave in, as a deterministic gzip tarball (sorted, no times, owners
or modes beyond the executable bit), and its safe extraction on a worker.

Ignore files use git's pattern rules: `#` comments, `!` re-includes, a trailing `/` for directories only, a `/` at
the start or in the middle anchors a pattern to the directory of its ignore file, `*` and `?` stay within a path
part, `**` spans parts. A file in an ignored directory cannot be re-included (as in git).
"""

from __future__ import annotations

import gzip
import io
import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final

IGNORE_FILES: Final = (".gitignore", ".flyteignore")
# Never shipped, whatever the ignore files say: caches, virtual environments, VCS data, build output, secrets in .env.
STANDARD_IGNORES: Final = (
    ".git", "__pycache__", "*.pyc", ".cache", ".ruff_cache", ".mypy_cache", ".pytest_cache", ".venv", "venv",
    ".idea", "*.log", ".env", "*.egg-info", "*.egg", "dist", "build", "*.whl", ".DS_Store",
)  # fmt: skip
MAX_TREE_FILES: Final = 20_000


class SourceTreeError(ValueError):
    """The source tree cannot be bundled (too many files, or a root that is not a directory)."""


@dataclass(frozen=True)
class _Rule:
    base: PurePosixPath  # the directory of the ignore file, relative to the root
    pattern: re.Pattern[str]
    negated: bool
    directories_only: bool

    def matches(self, path: PurePosixPath, is_dir: bool) -> bool:
        if self.directories_only and not is_dir:
            return False
        try:
            relative = path.relative_to(self.base) if self.base.parts else path
        except ValueError:
            return False
        return self.pattern.fullmatch(relative.as_posix()) is not None


def _translate(glob: str) -> str:
    """A regex for one gitignore pattern (already stripped of `!`, a trailing `/` and anchoring)."""
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("/**", i) and i + 3 == len(glob):
            out.append("/.*")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[" and (end := glob.find("]", i + 2)) != -1:
            body = glob[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = end + 1
        elif glob[i] == "\\" and i + 1 < len(glob):
            out.append(re.escape(glob[i + 1]))
            i += 2
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out)


def parse_rules(text: str, base: PurePosixPath) -> list[_Rule]:
    """The rules of one ignore file whose directory is `base` (relative to the root)."""
    rules = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        if negated:
            line = line[1:]
        directories_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        line = line.lstrip("/")
        regex = _translate(line) if anchored else "(?:.*/)?" + _translate(line)
        rules.append(_Rule(base, re.compile(regex), negated, directories_only))
    return rules


def _ignored(rules: list[_Rule], path: PurePosixPath, is_dir: bool) -> bool:
    verdict = False
    for rule in rules:  # the last matching rule decides, as in git
        if rule.matches(path, is_dir):
            verdict = not rule.negated
    return verdict


_STANDARD = parse_rules("\n".join(STANDARD_IGNORES), PurePosixPath())


def tree_files(root: Path) -> list[PurePosixPath]:
    """The files of the tree under `root` that the ignore rules leave in, sorted, relative to `root`.

    Raises:
        SourceTreeError: If `root` is not a directory, or holds more than `MAX_TREE_FILES` files.
    """
    if not root.is_dir():
        raise SourceTreeError(f"the root directory {root} does not exist or is not a directory")
    found: list[PurePosixPath] = []
    for relative in _walk(root, PurePosixPath(), []):
        found.append(relative)
        if len(found) > MAX_TREE_FILES:
            raise SourceTreeError(
                f"{root} holds more than {MAX_TREE_FILES:,} files to bundle: set root_dir to your project, or list "
                "what to leave out in .flyteignore"
            )
    return sorted(found)


def _walk(root: Path, here: PurePosixPath, inherited: list[_Rule]) -> Iterator[PurePosixPath]:
    directory = root / here
    rules = list(inherited)
    for name in IGNORE_FILES:
        ignore_file = directory / name
        if ignore_file.is_file():
            rules.extend(parse_rules(ignore_file.read_text(errors="replace"), here))
    with os.scandir(directory) as entries:
        children = sorted(entries, key=lambda entry: entry.name)
    for entry in children:
        path = here / entry.name
        is_dir = entry.is_dir(follow_symlinks=False)
        if (
            entry.is_symlink()
            or _ignored(_STANDARD, PurePosixPath(entry.name), is_dir)
            or _ignored(rules, path, is_dir)
        ):
            continue
        if is_dir:
            yield from _walk(root, path, rules)
        elif entry.is_file(follow_symlinks=False):
            yield path


def tree_tarball(root: Path) -> bytes:
    """The gzip tarball of `tree_files(root)`: the same bytes for the same files, wherever and whenever made."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for relative in tree_files(root):
            source = root / relative
            info = tarfile.TarInfo(relative.as_posix())
            info.size = source.stat().st_size
            info.mode = 0o755 if os.access(source, os.X_OK) else 0o644
            with source.open("rb") as content:
                tar.addfile(info, content)
    return buffer.getvalue()


def extract_tree(data: bytes, destination: Path) -> None:
    """Unpack a tarball made by `tree_tarball` into `destination` (created), refusing links and paths that leave it."""
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            parts = PurePosixPath(member.name).parts
            if not member.isfile() or member.name.startswith("/") or ".." in parts:
                raise SourceTreeError(f"the source tree holds {member.name!r}, which is not a plain relative file")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(destination, filter="data")
        else:  # Python < 3.12: the members were checked above
            tar.extractall(destination)
