"""The source tree of copy_style="all": which files it holds (git's ignore rules, the standard ignores), that its
tarball is the same bytes for the same files, and that extraction refuses members that would leave its directory."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from flyte_celery._celery import source_tree
from flyte_celery._celery.source_tree import SourceTreeError, extract_tree, tree_files, tree_tarball


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def names(root: Path) -> list[str]:
    return [path.as_posix() for path in tree_files(root)]


def test_standard_ignores_leave_out_caches_environments_and_secrets(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            "app.py": "",
            "pkg/__init__.py": "",
            "pkg/__pycache__/mod.cpython-312.pyc": "",
            "pkg/old.pyc": "",
            ".venv/lib/site.py": "",
            ".git/HEAD": "",
            ".env": "SECRET=1",
            "build/out.txt": "",
            "run.log": "",
        },
    )
    assert names(tmp_path) == ["app.py", "pkg/__init__.py"]


@pytest.mark.parametrize(
    ("gitignore", "kept"),
    [
        ("*.csv\n", ["a.py", "sub/b.py", "sub/deep/c.py"]),
        ("*.csv\n!keep.csv\n", ["a.py", "keep.csv", "sub/b.py", "sub/deep/c.py"]),
        ("/data.csv\n", ["a.py", "keep.csv", "sub/b.py", "sub/data.csv", "sub/deep/c.py"]),
        ("sub/\n", ["a.py", "data.csv", "keep.csv"]),
        ("sub/**/*.py\n", ["a.py", "data.csv", "keep.csv", "sub/data.csv"]),
        ("deep\n", ["a.py", "data.csv", "keep.csv", "sub/b.py", "sub/data.csv"]),
        ("# a comment\n\n?.py\n", ["data.csv", "keep.csv", "sub/data.csv"]),
        ("sub/\n!sub/b.py\n", ["a.py", "data.csv", "keep.csv"]),  # a file in an ignored directory stays out
    ],
    ids=["glob", "negation", "anchored", "directory", "double-star", "name-anywhere", "comment-and-?", "no-reinclude"],
)
def test_gitignore_patterns_follow_gits_rules(tmp_path: Path, gitignore: str, kept: list[str]) -> None:
    make_tree(
        tmp_path,
        {
            "a.py": "",
            "data.csv": "",
            "keep.csv": "",
            "sub/b.py": "",
            "sub/data.csv": "",
            "sub/deep/c.py": "",
            ".gitignore": gitignore,
        },
    )
    assert [name for name in names(tmp_path) if name != ".gitignore"] == kept


def test_nested_ignore_files_apply_below_their_directory_and_flyteignore_adds_rules(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            "notes.txt": "",
            "sub/notes.txt": "",
            "sub/.gitignore": "notes.txt\n",
            "other/notes.txt": "",
            "other/big.bin": "",
            ".flyteignore": "*.bin\n",
        },
    )
    assert names(tmp_path) == [".flyteignore", "notes.txt", "other/notes.txt", "sub/.gitignore"]


def test_symlinks_are_not_followed_or_shipped(tmp_path: Path) -> None:
    outside = make_tree(tmp_path / "outside", {"secret.txt": "s"})
    project = make_tree(tmp_path / "project", {"app.py": ""})
    (project / "link.txt").symlink_to(outside / "secret.txt")
    (project / "linked-dir").symlink_to(outside)
    assert names(project) == ["app.py"]


def test_the_tarball_is_the_same_bytes_for_the_same_files(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "one", {"app.py": "print(1)\n", "pkg/mod.py": "x = 1\n"})
    second = make_tree(tmp_path / "two", {"pkg/mod.py": "x = 1\n", "app.py": "print(1)\n"})
    os.utime(second / "app.py", (1, 1))
    assert tree_tarball(first) == tree_tarball(second)
    (second / "app.py").write_text("print(2)\n")
    assert tree_tarball(first) != tree_tarball(second)


def test_extraction_round_trips_files_and_the_executable_bit(tmp_path: Path) -> None:
    project = make_tree(tmp_path / "project", {"app.py": "a", "bin/run.sh": "#!/bin/sh\n"})
    (project / "bin/run.sh").chmod(0o755)
    extract_tree(tree_tarball(project), tmp_path / "out")
    assert (tmp_path / "out/app.py").read_text() == "a"
    assert os.access(tmp_path / "out/bin/run.sh", os.X_OK)
    assert not os.access(tmp_path / "out/app.py", os.X_OK)


@pytest.mark.parametrize("member", ["../escape.py", "/abs.py", "link"])
def test_extraction_refuses_members_that_leave_the_directory(tmp_path: Path, member: str) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(member)
        if member == "link":
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(SourceTreeError, match="not a plain relative file"):
        extract_tree(buffer.getvalue(), tmp_path / "out")
    assert not (tmp_path / "escape.py").exists()
    assert not any((tmp_path / "out").rglob("*"))


def test_too_many_files_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source_tree, "MAX_TREE_FILES", 3)
    make_tree(tmp_path, {f"f{i}.py": "" for i in range(5)})
    with pytest.raises(SourceTreeError, match="more than 3 files"):
        tree_files(tmp_path)


def test_a_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceTreeError, match="does not exist or is not a directory"):
        tree_files(tmp_path / "nope")
