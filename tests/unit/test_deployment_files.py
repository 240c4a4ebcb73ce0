"""docker-compose.yml, .env.example and the worker image stay valid, safe to copy, and true to the code.

No Docker engine runs here: the compose file is interpolated the way `docker compose` does it, with the values of
`.env.example`, and what each service would run is checked against the code that reads it (the config loader, our
CLI's click commands, Celery's and Flower's options).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from packaging.utils import canonicalize_name

from flyte_celery._cli import cli
from flyte_celery._config_loader import ENV_PREFIX, FREE_FORM_SECTION, SECTION_MODELS, SECTION_NAMES, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "workers" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CONSTRAINTS = ROOT / "workers" / "constraints.txt"
# `docker compose` interpolation: $$, ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error},
# ${NAME:+other}, ${NAME+other}, $NAME.
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<bare>[A-Za-z_]\w*))"
)
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN|AUTH|USER")
_REQUIRED_ONLY = re.compile(r"(?:\$\{[A-Za-z_]\w*:\?[^}]*\}|:)+")  # nothing but required variables (and ':')
_URL = re.compile(r"\w+://(?:\$\{[^}]*\}|[^\s\"'$])+")  # a URL, with the variables in it (their messages have spaces)


class MissingVariable(Exception):
    """A `${NAME:?error}` whose variable is unset or empty: `docker compose` refuses to start with this error."""


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """`value` (a YAML document or part of it) with every string interpolated from `env`, as `docker compose` does."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg, current = match["op"] or "", match["arg"] or "", env.get(name)
        missing = current is None or (op.startswith(":") and current == "")
        if op in (":?", "?") and missing:
            raise MissingVariable(f"{name}: {arg}")
        if op in (":-", "-"):
            return arg if missing else str(current)
        if op in (":+", "+"):
            return "" if missing else arg
        return current or ""

    return _VARIABLE.sub(substitute, value)


def _compose_text() -> str:
    return COMPOSE.read_text()


def _compose() -> dict[str, Any]:
    return yaml.safe_load(_compose_text())  # type: ignore[no-any-return]


def _env_example() -> dict[str, str]:
    pairs = [line.partition("=") for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#")]
    return {name: value for name, _, value in pairs}


def _filled_env() -> dict[str, str]:
    """The values of .env.example, every empty one filled as a user would (hex secrets, a word for user names)."""
    return {name: value or f"{name.lower()}-0123abcd" for name, value in _env_example().items()}


def _interpolated() -> dict[str, Any]:
    return interpolate(_compose(), _filled_env())  # type: ignore[no-any-return]


def _strings(value: Any) -> list[str]:
    """Every string of a YAML document (keys excluded), comments never."""
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return [value] if isinstance(value, str) else []


def _urls() -> list[str]:
    return [url for text in _strings(_compose()) for url in _URL.findall(text)]


def _url_password(url: str) -> str | None:
    # Not urlsplit: the '?' of ${NAME:?error} would start the query.
    match = re.match(r"\w+://[^:@/]*:(?P<password>(?:\$\{[^}]*\}|[^@/$])+)@", url)
    return match["password"] if match else None


def _variables(text: str) -> list[re.Match[str]]:
    return [match for match in _VARIABLE.finditer(text) if not match["escaped"]]


def _header() -> str:
    lines = []
    for line in _compose_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.removeprefix("#"))
    return "\n".join(lines)


def _dockerfile_instructions(keyword: str) -> list[str]:
    lines = DOCKERFILE.read_text().splitlines()
    return [line.split(None, 1)[1] for line in lines if line.split(None, 1)[:1] == [keyword]]


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    schema = json.loads((ROOT / "tests" / "schemas" / "compose-spec.json").read_text())
    # The spec names draft-07's metaschema by an URI jsonschema does not know under that spelling: say it outright.
    jsonschema.Draft7Validator(schema).validate(_compose())
    jsonschema.Draft7Validator(schema).validate(_interpolated())


def test_the_schema_check_rejects_a_broken_compose_file() -> None:
    schema = json.loads((ROOT / "tests" / "schemas" / "compose-spec.json").read_text())
    broken = _compose()
    broken["services"]["worker"]["no_such_setting"] = 1
    assert not jsonschema.Draft7Validator(schema).is_valid(broken)


def test_compose_refuses_to_start_until_every_secret_of_the_example_env_is_filled() -> None:
    with pytest.raises(MissingVariable, match=r"\.env"):
        interpolate(_compose(), _env_example())
    required = {match["braced"] for match in _variables(_compose_text()) if match["op"] == ":?"}
    example = _env_example()
    assert required <= set(example), (
        f"required by docker-compose.yml, missing in .env.example: {required - set(example)}"
    )
    assert {name for name in required if example[name]} == set(), "the example must not give secrets a value"
    for name in required:  # each one alone missing stops it, naming the variable
        with pytest.raises(MissingVariable, match=name):
            interpolate(_compose(), {**_filled_env(), name: ""})


def test_no_secret_has_a_default_value() -> None:
    for match in [match for text in _strings(_compose()) for match in _variables(text)]:
        name = match["braced"] or match["bare"]
        if _SECRET_NAME.search(name):
            assert match["op"] == ":?", f"{match[0]} must be required (${{{name}:?...}}), with no default"
    for name, service in _compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if _SECRET_NAME.search(key):
                assert _REQUIRED_ONLY.fullmatch(str(value)), f"{name}: {key} must come from required variables"
    urls = _urls()
    assert any(_url_password(url) for url in urls)
    for url in urls:
        password = _url_password(url)
        assert password is None or _REQUIRED_ONLY.fullmatch(password), f"a password written into {url}"


def test_every_flyte_celery_variable_names_a_real_setting() -> None:
    seen = 0
    for name, service in _compose()["services"].items():
        for variable in service.get("environment") or {}:
            if not variable.startswith(ENV_PREFIX):
                continue
            seen += 1
            section, _, key = variable.removeprefix(ENV_PREFIX).lower().partition("_")
            assert section in SECTION_NAMES, f"{name}: {variable}: no config section {section!r}"
            if section != FREE_FORM_SECTION:
                assert key in SECTION_MODELS[section].model_fields, f"{name}: {variable}: no key {section}.{key}"
    assert seen


def test_workers_read_the_settings_compose_gives_them() -> None:
    services = _interpolated()["services"]
    secrets = _filled_env()
    settings = load_settings(environ=services["worker"]["environment"], discover=False)
    broker = urlsplit(settings.broker.url)
    assert (broker.scheme, broker.hostname, broker.password) == ("redis", "redis", secrets["REDIS_PASSWORD"])
    assert broker.hostname in services
    assert settings.redis_url_resolved() == settings.broker.url
    key = settings.security.signing_key
    assert key is not None
    assert key.get_secret_value() == secrets["FLYTE_CELERY_SECURITY_SIGNING_KEY"]
    bucket = secrets["S3_BUCKET"]
    assert settings.run.raw_data_path == f"s3://{bucket}/raw_data"
    assert settings.run.run_base_dir == f"s3://{bucket}/metadata"
    storage = settings.storage
    assert storage.endpoint_url is not None
    assert urlsplit(storage.endpoint_url).hostname in services
    assert storage.access_key_id is not None
    assert storage.secret_access_key is not None
    assert storage.access_key_id.get_secret_value() == secrets["S3_ACCESS_KEY_ID"]
    assert storage.secret_access_key.get_secret_value() == secrets["S3_SECRET_ACCESS_KEY"]
    flower = load_settings(environ=services["flower"]["environment"], discover=False)
    assert flower.broker.url == settings.broker.url


def test_service_commands_are_real_commands_and_options() -> None:
    services = _interpolated()["services"]
    entry = next(e for e in metadata.entry_points(group="console_scripts") if e.name == "flyte-celery")
    assert entry.value == "flyte_celery._cli:main"
    program, name, *args = services["worker"]["command"]
    assert program == "flyte-celery"
    command = cli.commands[name]
    with command.make_context(name, list(args)) as ctx:
        assert ctx.params["celery_args"] == (), "options our worker command does not know go to celery as is"
        assert ctx.params["queues"] == services["worker"]["environment"]["FLYTE_CELERY_RUN_QUEUE"]
    celery, app_flag, app, subcommand, *flower_args = services["flower"]["command"]
    assert (celery, app_flag, subcommand) == ("celery", "-A", "flower")
    assert importlib.util.find_spec(app) is not None, app
    assert any(e.name == "flower" for e in metadata.entry_points(group="celery.commands"))
    for arg in flower_args:
        assert arg.startswith("--"), arg
        assert arg[2:].partition("=")[0] in _flower_options(), arg


def test_flower_requires_basic_auth() -> None:
    flower = _compose()["services"]["flower"]
    env = flower.get("environment") or {}
    assert "FLOWER_UNAUTHENTICATED_API" not in env
    options = {arg.partition("=")[0] for arg in flower["command"]} | {
        "--" + name.removeprefix("FLOWER_").lower().replace("_", "-") for name in env if name.startswith("FLOWER_")
    }
    assert "--basic-auth" in options
    assert all(name.removeprefix("--") in _flower_options() for name in options if name.startswith("--"))
    auth = _interpolated()["services"]["flower"]["environment"]["FLOWER_BASIC_AUTH"]
    user, _, password = auth.partition(":")  # Flower splits the option at ',' and each entry at ':'
    assert (user, password) == (_filled_env()["FLOWER_USER"], _filled_env()["FLOWER_PASSWORD"])


def test_redis_requires_its_password_and_the_healthcheck_uses_it() -> None:
    redis = _compose()["services"]["redis"]
    command = redis["command"]
    password = command[command.index("--requirepass") + 1]
    assert re.fullmatch(r"\$\{REDIS_PASSWORD:\?[^}]*\}", password)
    assert redis["environment"]["REDISCLI_AUTH"] == password  # redis-cli reads its password from REDISCLI_AUTH
    probe = " ".join(redis["healthcheck"]["test"])
    assert "redis-cli" in probe
    assert "PONG" in probe
    redis_urls = [url for url in _urls() if url.startswith("redis://")]
    assert redis_urls
    for url in redis_urls:
        assert _url_password(url) == password, url


def test_published_ports_listen_on_loopback_only() -> None:
    ports = [port for service in _compose()["services"].values() for port in service.get("ports", [])]
    assert ports
    assert all(str(port).startswith("127.0.0.1:") for port in ports), ports


def test_minio_setup_creates_the_bucket_and_user_the_workers_use() -> None:
    services = _compose()["services"]
    setup = services["minio-setup"]
    script = setup["command"][0]
    used = set(re.findall(r"\$\$\{?(\w+)", script))
    assert used <= set(setup["environment"]), f"the setup script reads variables it is not given: {used}"
    assert 'mc mb --ignore-existing "minio/$$S3_BUCKET"' in script
    assert 'mc admin user add minio "$$S3_ACCESS_KEY_ID" "$$S3_SECRET_ACCESS_KEY"' in script
    worker = services["worker"]
    assert worker["depends_on"]["minio-setup"]["condition"] == "service_completed_successfully"
    env = worker["environment"]
    assert env["FLYTE_CELERY_STORAGE_ACCESS_KEY_ID"] == setup["environment"]["S3_ACCESS_KEY_ID"]
    assert env["FLYTE_CELERY_STORAGE_SECRET_ACCESS_KEY"] == setup["environment"]["S3_SECRET_ACCESS_KEY"]
    assert env["FLYTE_CELERY_RUN_RAW_DATA_PATH"].startswith(f"s3://{setup['environment']['S3_BUCKET']}/")
    assert "MINIO_ROOT_PASSWORD" not in json.dumps(worker)  # workers get the bucket's user, not MinIO's root


def test_the_header_gives_the_exact_steps_and_a_client_environment_that_matches() -> None:
    header = _header()
    for step in ("cp .env.example .env", "secrets.token_hex(32)", "docker compose up --build", "set -a; . ./.env"):
        assert step in header
    exports = dict(
        word.partition("=")[::2]
        for line in header.splitlines()
        if line.strip().startswith("export ")
        for word in shlex.split(line)[1:]
    )
    assert exports["FLYTE_CELERY_RUN_MODE"] == "remote"
    for variable in exports:
        section, _, key = variable.removeprefix(ENV_PREFIX).lower().partition("_")
        assert key in SECTION_MODELS[section].model_fields, variable
    referenced = {match["braced"] or match["bare"] for value in exports.values() for match in _variables(value)}
    assert referenced <= set(_env_example()), referenced
    # `set -a; . ./.env` exports every variable of .env, FLYTE_CELERY_SECURITY_SIGNING_KEY among them.
    client_env = {**_filled_env(), **interpolate(exports, _filled_env())}
    client = load_settings(environ=client_env, discover=False)
    services = _interpolated()["services"]
    worker = load_settings(environ=services["worker"]["environment"], discover=False)
    published = {int(port.split(":")[1]): name for name, s in services.items() for port in s.get("ports", [])}
    assert published[urlsplit(client.broker.url).port or 6379] == "redis"
    assert urlsplit(client.broker.url).password == urlsplit(worker.broker.url).password
    assert published[urlsplit(client.storage.endpoint_url or "").port or 0] == "minio"
    assert published[urlsplit(client.flower.url or "").port or 0] == "flower"
    for key in ("raw_data_path", "run_base_dir"):
        assert getattr(client.run, key) == getattr(worker.run, key)
    assert client.storage.access_key_id == worker.storage.access_key_id
    assert client.storage.secret_access_key == worker.storage.secret_access_key
    assert client.storage.region == worker.storage.region
    assert client.security.signing_key == worker.security.signing_key
    assert client.run.mode == "remote"


def test_compose_builds_from_files_that_exist() -> None:
    for service in _compose()["services"].values():
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file()
    for instruction in _dockerfile_instructions("COPY"):
        for source in instruction.split()[:-1]:
            assert (ROOT / source).exists(), source


def test_images_are_pinned_to_exact_versions() -> None:
    images = [service["image"] for service in _compose()["services"].values() if "image" in service]
    images += _dockerfile_instructions("FROM")
    assert len(images) >= 4
    for image in images:
        tag = image.partition(":")[2]
        assert re.search(r"\d+\.\d+\.\d+|RELEASE\.\d{4}-", tag), f"{image}: not an exact version"


def test_the_worker_image_runs_as_an_unprivileged_user() -> None:
    lines = [line.split(None, 1) for line in DOCKERFILE.read_text().splitlines() if line and not line.startswith("#")]
    keywords = [words[0] for words in lines]
    last_user = len(keywords) - 1 - keywords[::-1].index("USER")
    assert "RUN" not in keywords[last_user:], "nothing may run as root after the last USER"
    user = lines[last_user][1].split(":")[0].strip()
    assert user not in ("root", "0"), user


def test_the_worker_image_installs_exact_versions() -> None:
    installs = [run for run in _dockerfile_instructions("RUN") if run.startswith("pip install")]
    assert installs
    assert all("--constraint constraints.txt" in run for run in installs), installs
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep, f"not an exact pin: {line}"
            assert re.fullmatch(r"[\w.!+]+", version), f"not an exact pin: {line}"
            pins[canonicalize_name(name)] = version
    pinner = _pin_constraints()
    assert pinner.PROJECT not in pins  # installed from the source tree
    assert set(pinner.ROOTS) - {pinner.PROJECT} <= set(pins)
    checked = 0
    # Complete and consistent: what the project needs, and what every package pinned at the version installed here
    # needs (its metadata is readable here), is pinned at a version it accepts.
    for name, (version, extras) in pinner.closure().items():
        if name != pinner.PROJECT and pins.get(name) != version:
            continue
        checked += 1
        for requirement in pinner.requirements_of(name, extras):
            pinned = pins.get(canonicalize_name(requirement.name))
            assert pinned is not None, f"{name} needs {requirement}: rerun python workers/pin_constraints.py"
            assert requirement.specifier.contains(pinned, prereleases=True), f"{name} needs {requirement}"
    assert checked


def test_the_build_context_keeps_environments_and_secrets_out() -> None:
    patterns = [line for line in DOCKERIGNORE.read_text().splitlines() if line and not line.startswith("#")]
    for excluded in (".venv", ".git", ".env", "**/__pycache__"):
        assert excluded in patterns, excluded
    copied = {source for instruction in _dockerfile_instructions("COPY") for source in instruction.split()[:-1]}
    for source in copied:  # what the image copies must stay in the context
        top = source.split("/")[0]
        assert source not in patterns, source
        assert top not in patterns, source


def _flower_options() -> set[str]:
    import flower.options  # noqa: F401  (defines Flower's options on tornado's parser)
    from tornado.options import options

    return set(options._options)


def _pin_constraints() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pin_constraints", ROOT / "workers" / "pin_constraints.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_requirements_helper_reads_markers_and_extras() -> None:
    # The pin check is only as good as this: celery[redis] must bring kombu[redis] and with it redis.
    pinner = _pin_constraints()
    names = {canonicalize_name(req.name) for req in pinner.requirements_of("kombu", frozenset({"redis"}))}
    assert "redis" in names
    assert "redis" not in {canonicalize_name(req.name) for req in pinner.requirements_of("kombu")}
