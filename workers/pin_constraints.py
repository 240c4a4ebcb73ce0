"""Writes `workers/constraints.txt`: the exact version, in the running environment, of every package the worker image
installs besides flyte-celery itself (its dependencies and Flower's, transitively, for this platform and Python).

Run it in the environment the test suite passed in, after changing dependencies:

    python workers/pin_constraints.py
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "flyte-celery"
ROOTS = (PROJECT, "flower")  # what workers/Dockerfile installs
CONSTRAINTS = Path(__file__).with_name("constraints.txt")
HEADER = """\
# The exact versions the worker image installs (workers/Dockerfile: pip install --constraint ...): those of the
# environment this file was written from (Python {python}, {system}), where the test suite runs. Written by
# workers/pin_constraints.py; rerun it there after changing dependencies. The build backend (setuptools) is not
# pinned: it only builds the wheel and stays out of the image. Exact versions, not hashes.
"""


def requirements_of(name: str, extras: frozenset[str] = frozenset()) -> list[Requirement]:
    """The requirements of the installed distribution `name` that apply here, with `extras` asked for."""
    found = []
    for text in metadata.requires(name) or []:
        requirement = Requirement(text)
        environments = [{"extra": extra} for extra in sorted(extras)] or [{"extra": ""}]
        if requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments):
            found.append(requirement)
    return found


def closure(roots: tuple[str, ...] = ROOTS) -> dict[str, tuple[str, frozenset[str]]]:
    """Every installed distribution `roots` need, transitively: canonical name -> (installed version, extras asked)."""
    found: dict[str, tuple[str, frozenset[str]]] = {}
    pending = [(root, frozenset[str]()) for root in roots]
    while pending:
        name, extras = pending.pop()
        key = canonicalize_name(name)
        asked = found[key][1] if key in found else frozenset[str]()
        if key in found and extras <= asked:
            continue
        found[key] = (metadata.version(name), asked | extras)
        pending += [(req.name, frozenset(req.extras)) for req in requirements_of(name, asked | extras)]
    return found


def render(found: dict[str, tuple[str, frozenset[str]]]) -> str:
    pins = [f"{name}=={version}" for name, (version, _) in sorted(found.items()) if name != PROJECT]
    header = HEADER.format(python=platform.python_version(), system=f"{platform.system()} {platform.machine()}")
    return header + "\n".join(pins) + "\n"


def main() -> int:
    CONSTRAINTS.write_text(render(closure()))
    print(f"wrote {CONSTRAINTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
