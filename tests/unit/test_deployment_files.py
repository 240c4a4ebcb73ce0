"""docker-compose.yml and the worker image stay valid and true to the code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from flyte_celery._config_model import Settings

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    schema = json.loads((ROOT / "tests" / "schemas" / "compose-spec.json").read_text())
    # The spec names draft-07's metaschema by an URI jsonschema does not know under that spelling: say it outright.
    jsonschema.Draft7Validator(schema).validate(_compose())


def test_compose_environment_names_real_settings() -> None:
    sections = set(Settings.model_fields)
    for service in _compose()["services"].values():
        for name in service.get("environment", {}):
            if not name.startswith("FLYTE_CELERY_"):
                continue
            section, _, key = name.removeprefix("FLYTE_CELERY_").lower().partition("_")
            assert section in sections, name
            model = type(getattr(Settings(), section))
            assert key in model.model_fields, name


def test_compose_builds_from_files_that_exist() -> None:
    for service in _compose()["services"].values():
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file()
    dockerfile = (ROOT / "workers" / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_worker_commands_point_at_the_worker_module() -> None:
    services = _compose()["services"]
    assert services["worker"]["command"][:2] == ["flyte-celery", "worker"]
    assert services["flower"]["command"][:3] == ["celery", "-A", "flyte_celery.worker"]


def test_the_schema_check_rejects_a_broken_compose_file() -> None:
    schema = json.loads((ROOT / "tests" / "schemas" / "compose-spec.json").read_text())
    broken = _compose()
    broken["services"]["worker"]["no_such_setting"] = 1
    assert not jsonschema.Draft7Validator(schema).is_valid(broken)
