from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from flyte_celery import _config_loader
from flyte_celery._config_loader import (
    SECTION_MODELS,
    SECTION_NAMES,
    find_config_file,
    get_settings,
    load_settings,
    set_settings,
)
from flyte_celery._config_model import Settings
from flyte_celery.errors import ConfigError, InitializationError

EXAMPLE_PATH = Path(__file__).resolve().parents[2] / "config.example.yaml"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Runs each test in an empty working directory with an empty home, so no real config file is found."""
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FLYTE_CELERY_CONFIG", raising=False)
    monkeypatch.setattr(_config_loader, "_current_settings", None)
    return work


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def dump(settings: Settings) -> dict[str, Any]:
    return settings.model_dump(exclude={"source"})


# --- the example file and the models never drift ---


def test_example_file_equals_model_defaults() -> None:
    settings = load_settings(EXAMPLE_PATH, environ={})
    assert settings.source == EXAMPLE_PATH
    assert dump(settings) == dump(Settings())


def test_example_file_lists_every_model_field_with_a_comment() -> None:
    document = yaml.safe_load(EXAMPLE_PATH.read_text())
    assert set(document) == set(SECTION_NAMES)
    assert set(Settings.model_fields) - {"source"} == set(SECTION_NAMES)
    lines = EXAMPLE_PATH.read_text().splitlines()
    for section, model in SECTION_MODELS.items():
        assert set(document[section]) == set(model.model_fields), section
        for key in model.model_fields:
            assert any(re.match(rf"\s+{key}:.*#\s*\S", line) for line in lines), f"{section}.{key} has no comment"
    assert document["celery"] == {}


# --- discovery ---


def test_no_file_found_gives_defaults_and_no_source() -> None:
    assert find_config_file(environ={}) is None
    settings = load_settings(environ={})
    assert settings.source is None
    assert settings == Settings()


def test_explicit_path_must_exist(isolated: Path) -> None:
    with pytest.raises(InitializationError, match=r"missing\.yaml"):
        find_config_file(isolated / "missing.yaml", environ={})


def test_env_config_path_must_exist(isolated: Path) -> None:
    with pytest.raises(InitializationError, match=r"nope\.yaml.*FLYTE_CELERY_CONFIG"):
        load_settings(environ={"FLYTE_CELERY_CONFIG": str(isolated / "nope.yaml")})


def test_explicit_path_beats_env_and_env_beats_working_directory(isolated: Path) -> None:
    explicit = write(isolated / "a.yaml", "run: {project: a}")
    from_env = write(isolated / "b.yaml", "run: {project: b}")
    write(isolated / "config.yaml", "run: {project: c}")
    env = {"FLYTE_CELERY_CONFIG": str(from_env)}
    assert find_config_file(explicit, environ=env) == explicit
    assert load_settings(environ=env).run.project == "b"
    assert load_settings(environ={}).run.project == "c"


def test_search_order(isolated: Path, tmp_path: Path) -> None:
    repo = isolated / "repo"
    (repo / ".git").mkdir(parents=True)
    nested = repo / "src" / "pkg"
    nested.mkdir(parents=True)
    home_file = write(tmp_path / "home" / ".flyte-celery" / "config.yaml", "")
    git_file = write(repo / ".flyte-celery" / "config.yaml", "")
    dot_file = write(nested / ".flyte-celery" / "config.yaml", "")
    cwd_file = write(nested / "config.yaml", "")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(nested)
        found = []
        for path in (cwd_file, dot_file, git_file, home_file):
            found.append(find_config_file(environ={}))
            path.unlink()
        found.append(find_config_file(environ={}))
    assert found == [cwd_file, dot_file, git_file, home_file, None]


# --- precedence and environment variables ---


def test_env_beats_file_beats_default(isolated: Path) -> None:
    write(isolated / "config.yaml", "run:\n  mode: remote\n  queue: from-file\nbroker:\n  url: amqp://h//\n")
    settings = load_settings(environ={"FLYTE_CELERY_RUN_MODE": "hybrid"})
    assert settings.run.mode == "hybrid"
    assert settings.run.queue == "from-file"
    assert settings.broker.url == "amqp://h//"
    assert settings.redis.key_prefix == "flyte_celery:"


def test_env_values_are_yaml_scalars() -> None:
    settings = load_settings(
        environ={
            "FLYTE_CELERY_RUN_INTERRUPTIBLE": "true",
            "FLYTE_CELERY_RUN_MAX_ACTION_CONCURRENCY": "3",
            "FLYTE_CELERY_WORKER_CONCURRENCY": "null",
            "FLYTE_CELERY_LOG_LEVEL": "debug",
            "FLYTE_CELERY_LOG_RESET_ROOT_LOGGER": "yes",
        }
    )
    assert settings.run.interruptible is True
    assert settings.run.max_action_concurrency == 3
    assert settings.worker.concurrency is None
    assert settings.log.level == 10
    assert settings.log.reset_root_logger is True


def test_env_text_values_are_kept_verbatim_except_null(isolated: Path) -> None:
    write(isolated / "config.yaml", "run: {project: p}")
    settings = load_settings(
        environ={
            "FLYTE_CELERY_SECURITY_SIGNING_KEY": "0x1F #not-a-comment",
            "FLYTE_CELERY_RUN_DOMAIN": "007",
            "FLYTE_CELERY_RUN_PROJECT": "null",
            "FLYTE_CELERY_BROKER_URL": "redis://:pw@h:6379/1",
        }
    )
    assert settings.security.signing_key is not None
    assert settings.security.signing_key.get_secret_value() == "0x1F #not-a-comment"
    assert settings.run.domain == "007"
    assert settings.run.project is None
    assert settings.broker.url == "redis://:pw@h:6379/1"


def test_env_sets_free_form_celery_settings(isolated: Path) -> None:
    write(isolated / "config.yaml", "celery:\n  task_acks_late: true\n  worker_prefetch_multiplier: 4\n")
    settings = load_settings(
        environ={
            "FLYTE_CELERY_CELERY_WORKER_PREFETCH_MULTIPLIER": "1",
            "FLYTE_CELERY_CELERY_BROKER_TRANSPORT_OPTIONS": "{visibility_timeout: 3600}",
        }
    )
    assert settings.celery == {
        "task_acks_late": True,
        "worker_prefetch_multiplier": 1,
        "broker_transport_options": {"visibility_timeout": 3600},
    }


def test_env_variables_outside_our_sections_are_ignored() -> None:
    settings = load_settings(environ={"FLYTE_CELERY_TEST_REDIS_URL": "redis://x", "OTHER_RUN_MODE": "remote"})
    assert settings == Settings()


# --- errors ---


def test_bad_value_in_file_names_key_value_accepted_values_and_file(isolated: Path) -> None:
    path = write(isolated / "config.yaml", "run:\n  mode: remotee\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ={})
    message = str(info.value)
    for part in ("run.mode", "'remotee'", "'local'", "'remote'", "'hybrid'", str(path)):
        assert part in message
    assert info.value.key == "run.mode"


def test_bad_value_from_env_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"'lots'.*worker\.concurrency.*FLYTE_CELERY_WORKER_CONCURRENCY"):
        load_settings(environ={"FLYTE_CELERY_WORKER_CONCURRENCY": "lots"})


def test_unknown_key_is_an_error_naming_key_file_and_accepted_keys(isolated: Path) -> None:
    path = write(isolated / "config.yaml", "broker:\n  ulr: redis://h\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ={})
    message = str(info.value)
    assert "broker.ulr" in message
    assert str(path) in message
    assert "url" in message.split("accepted keys", 1)[1]


def test_unknown_env_key_in_our_section_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"redis\.ulr.*FLYTE_CELERY_REDIS_ULR"):
        load_settings(environ={"FLYTE_CELERY_REDIS_ULR": "redis://h"})


def test_bad_log_level_and_concurrency_are_explained(isolated: Path) -> None:
    write(isolated / "config.yaml", "log: {level: loud}\nrun: {max_action_concurrency: 1}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ={})
    message = str(info.value)
    assert "log.level" in message
    assert "'loud'" in message
    assert "DEBUG" in message
    assert "run.max_action_concurrency" in message
    assert "deadlocks" in message


def test_secret_values_are_not_echoed_in_errors() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"FLYTE_CELERY_SECURITY_SIGNING_KEYS": "hunter2"})
    assert "hunter2" not in str(info.value)
    assert "security.signing_keys" in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "security:\n  accepted_keys: {old: hunter2}\n",
        "security:\n  accepted_keys: [fine, [hunter2]]\n",
        "security:\n  signing_key: [hunter2]\n",
    ],
    ids=["accepted-keys-mapping", "accepted-key-list", "signing-key-list"],
)
def test_bad_secret_values_in_a_file_are_not_echoed(isolated: Path, text: str) -> None:
    write(isolated / "config.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_settings(environ={})
    assert "hunter2" not in str(info.value)
    assert "<hidden>" in str(info.value)
    assert str(info.value.key).startswith("security.")


# --- security, retention and cache ---


@pytest.mark.parametrize(
    ("value", "expected"),
    [("a, b", ["a", "b"]), ("only", ["only"]), (" a ,, b ,", ["a", "b"]), ("k#1,0x1F", ["k#1", "0x1F"])],
)
def test_accepted_keys_from_env_are_comma_separated_and_verbatim(value: str, expected: list[str]) -> None:
    settings = load_settings(environ={"FLYTE_CELERY_SECURITY_ACCEPTED_KEYS": value})
    assert [key.get_secret_value() for key in settings.security.accepted_keys] == expected


def test_an_empty_accepted_keys_env_variable_means_no_keys() -> None:
    # `FLYTE_CELERY_SECURITY_ACCEPTED_KEYS=` (e.g. `${OLD_KEYS:-}` in a compose file): no older keys, not an error.
    settings = load_settings(environ={"FLYTE_CELERY_SECURITY_ACCEPTED_KEYS": ""})
    assert settings.security.accepted_keys == []


def test_accepted_keys_from_a_file_list(isolated: Path) -> None:
    write(isolated / "config.yaml", "security:\n  signing_key: current\n  accepted_keys: [old-1, old-2]\n")
    security = load_settings(environ={}).security
    assert security.signing_key is not None
    assert security.signing_key.get_secret_value() == "current"
    assert [key.get_secret_value() for key in security.accepted_keys] == ["old-1", "old-2"]


def test_keys_never_show_in_reprs() -> None:
    settings = load_settings(
        environ={"FLYTE_CELERY_SECURITY_SIGNING_KEY": "hunter2", "FLYTE_CELERY_SECURITY_ACCEPTED_KEYS": "hunter3"}
    )
    for text in (repr(settings), str(settings), repr(settings.security), str(settings.model_dump())):
        assert "hunter2" not in text
        assert "hunter3" not in text


def test_retention_and_cache_from_env_and_their_bounds() -> None:
    settings = load_settings(
        environ={
            "FLYTE_CELERY_RETENTION_RESULTS_S": "3600",
            "FLYTE_CELERY_RETENTION_RUNS_S": "7200",
            "FLYTE_CELERY_CACHE_MAX_AGE_S": "null",
            "FLYTE_CELERY_CACHE_MAX_ENTRY_BYTES": "1024",
        }
    )
    assert (settings.retention.results_s, settings.retention.runs_s) == (3600, 7200)
    assert (settings.cache.max_age_s, settings.cache.max_entry_bytes) == (None, 1024)
    with pytest.raises(ConfigError, match=r"retention\.results_s.*FLYTE_CELERY_RETENTION_RESULTS_S") as info:
        load_settings(environ={"FLYTE_CELERY_RETENTION_RESULTS_S": "5"})
    assert info.value.key == "retention.results_s"
    with pytest.raises(ConfigError, match=r"cache\.max_entry_bytes"):
        load_settings(environ={"FLYTE_CELERY_CACHE_MAX_ENTRY_BYTES": "-1"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [("run: [unclosed\n", "Cannot read config file"), ("- a\n- b\n", "must be a mapping of sections")],
)
def test_malformed_file_is_a_config_error_naming_the_file(isolated: Path, text: str, expected: str) -> None:
    path = write(isolated / "config.yaml", text)
    with pytest.raises(ConfigError, match=expected) as info:
        load_settings(environ={})
    assert str(path) in str(info.value)


def test_empty_file_and_empty_sections_mean_defaults(isolated: Path) -> None:
    write(isolated / "config.yaml", "run:\nlog:\n")
    assert dump(load_settings(environ={})) == dump(Settings())
    write(isolated / "config.yaml", "")
    assert dump(load_settings(environ={})) == dump(Settings())


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.run.mode = "remote"


# --- Flyte config files ---

FLYTE_CONFIG = """\
admin:
  endpoint: dns:///localhost:8090
  insecure: true
console: {endpoint: http://localhost:8080}
image: {builder: local}
storage: {}
platform: {}
logger: {level: 4}
local:
  persistence: true
  tracked: false
  tracked_strict: false
task:
  org: my-org
  project: flytesnacks
  domain: development
"""


def test_flyte_config_is_accepted_and_task_section_fills_run(isolated: Path) -> None:
    write(isolated / "config.yaml", FLYTE_CONFIG + "run:\n  domain: staging\n")
    settings = load_settings(environ={})
    assert (settings.run.org, settings.run.project, settings.run.domain) == ("my-org", "flytesnacks", "staging")
    assert settings.local.cache_path is None


def test_env_beats_flyte_task_fallback(isolated: Path) -> None:
    write(isolated / "config.yaml", FLYTE_CONFIG)
    assert load_settings(environ={"FLYTE_CELERY_RUN_PROJECT": "env-project"}).run.project == "env-project"


def test_unknown_top_level_section_warns_with_its_name(isolated: Path) -> None:
    write(isolated / "config.yaml", "brokers:\n  url: redis://h\nrun: {project: p}\n")
    with pytest.warns(UserWarning, match="'brokers'") as record:
        settings = load_settings(environ={})
    assert settings.run.project == "p"
    assert record[0].filename == __file__


# --- resolved values ---


@pytest.mark.parametrize(
    ("broker", "redis", "expected"),
    [
        ("redis://b:6379/0", None, "redis://b:6379/0"),
        ("rediss://b:6380/0", None, "rediss://b:6380/0"),
        ("unix:///tmp/redis.sock", None, "unix:///tmp/redis.sock"),
        ("amqp://guest:guest@h:5672//", "redis://r/2", "redis://r/2"),
    ],
)
def test_redis_url_resolved(broker: str, redis: str | None, expected: str) -> None:
    settings = Settings.model_validate({"broker": {"url": broker}, "redis": {"url": redis}})
    assert settings.redis_url_resolved() == expected


def test_redis_url_is_required_with_amqp_broker_without_leaking_the_password() -> None:
    settings = Settings.model_validate({"broker": {"url": "amqp://guest:s3cret@h:5672//"}})
    with pytest.raises(ConfigError, match=r"redis\.url is required") as info:
        settings.redis_url_resolved()
    assert "s3cret" not in str(info.value)
    assert info.value.key == "redis.url"


def test_local_cache_path_resolved(isolated: Path, tmp_path: Path) -> None:
    assert Settings().local_cache_path_resolved() == tmp_path / "home" / ".flyte-celery" / "local-cache" / "cache.db"
    write(isolated / "config.yaml", "")
    assert load_settings(environ={}).local_cache_path_resolved() == isolated / "local-cache" / "cache.db"
    write(isolated / "config.yaml", "local: {cache_path: data/c.db}")
    assert load_settings(environ={}).local_cache_path_resolved() == isolated / "data" / "c.db"
    absolute = load_settings(environ={"FLYTE_CELERY_LOCAL_CACHE_PATH": str(tmp_path / "x.db")})
    assert absolute.local_cache_path_resolved() == tmp_path / "x.db"


def test_storage_prefixes_default_under_the_temp_dir() -> None:
    run = Settings().run
    assert run.raw_data_path_resolved().endswith(str(Path("flyte-celery") / "raw_data"))
    assert run.run_base_dir_resolved().endswith(str(Path("flyte-celery") / "metadata"))
    custom = Settings.model_validate({"run": {"raw_data_path": "s3://b/raw", "run_base_dir": "s3://b/meta"}}).run
    assert (custom.raw_data_path_resolved(), custom.run_base_dir_resolved()) == ("s3://b/raw", "s3://b/meta")


def test_current_settings_holder() -> None:
    assert get_settings() == Settings()
    chosen = Settings.model_validate({"run": {"mode": "remote"}})
    set_settings(chosen)
    assert get_settings() is chosen
