"""The `flyte-celery` command line: task files, typed inputs, run options, outputs and failures (local mode)."""

from __future__ import annotations

import ast
import datetime as dt
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from flyte_celery import _config_loader, _init, _logging
from flyte_celery._cli import cli
from flyte_celery._cli_params import click_type, parse_date, parse_datetime, parse_duration

HEADER = """\
from __future__ import annotations

import dataclasses
import datetime
import enum
import os
from typing import Literal, NamedTuple, Optional

import pydantic

import flyte_celery as flyte

env = flyte.TaskEnvironment("cli_tests")


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclasses.dataclass
class Point:
    x: int
    y: float = 0.0


class Cfg(pydantic.BaseModel):
    name: str
    tags: list[str] = []


class Pair(NamedTuple):
    total: int
    label: str
"""

TASKS = """
@env.task
def hello(x: int = 3, who: str = "world") -> str:
    \"\"\"Greet someone.

    Says hello x times.
    \"\"\"
    return f"hello {who} " * x


@env.task
def need(a: int, b: float) -> float:
    return a + b


@env.task
def context() -> dict[str, str]:
    return dict(flyte.ctx().custom_context)


@env.task
def read_env(key: str) -> Optional[str]:
    return os.environ.get(key)


@env.task
def project() -> str:
    return flyte.current_project()


@env.task
def boom(message: str = "it broke") -> int:
    raise ValueError(message)


@env.task
async def child(v: int) -> int:
    return v * 2


@env.task
async def parent(v: int) -> int:
    return await child(v) + 1


@env.task
def split(n: int) -> Pair:
    return Pair(n * 2, f"n={n}")


@env.task
def touch(path: str) -> None:
    open(path, "w").close()
"""


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No config file or FLYTE_CELERY_* variable from the machine, the local cache under tmp_path, and the process
    state the CLI changes (settings, loggers, sys.path, imported task modules) put back afterwards."""
    for name in list(os.environ):
        if name.startswith("FLYTE_CELERY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FLYTE_CELERY_LOCAL_CACHE_PATH", str(tmp_path / "cache" / "cache.db"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    modules = set(sys.modules)
    settings, initialised = _config_loader._current_settings, _init._initialised
    loggers = (_logging.system_logger, _logging.user_logger, logging.getLogger())
    saved = {lg: (list(lg.handlers), lg.level, lg.propagate) for lg in loggers}
    formatters = {h: h.formatter for h in logging.getLogger().handlers}
    yield
    for name in set(sys.modules) - modules:
        del sys.modules[name]
    _config_loader._current_settings, _init._initialised = settings, initialised
    for lg, (handlers, level, propagate) in saved.items():
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate
    for handler, formatter in formatters.items():
        handler.setFormatter(formatter)


def write_tasks(directory: Path, body: str = TASKS) -> Path:
    """A task file with a unique module name, so in-process runs never see another test's module."""
    path = directory / f"cli_tasks_{uuid.uuid4().hex[:12]}.py"
    path.write_text(HEADER + textwrap.dedent(body), encoding="utf-8")
    return path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def outputs_of(result: Result) -> dict[str, str]:
    """The `name=value` lines of a successful run, values unparsed."""
    lines = [line for line in result.stdout.splitlines() if "=" in line and not line.startswith("run:")]
    return dict(line.split("=", 1) for line in lines)


@pytest.fixture
def tasks_file(tmp_path: Path) -> Path:
    return write_tasks(tmp_path)


def test_runs_a_task_and_prints_the_run_name_and_outputs(tasks_file: Path) -> None:
    result = invoke("run", "--name", "cli-hello-1", str(tasks_file), "hello", "--x", "2", "--who", "cli")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "run: cli-hello-1"
    assert ast.literal_eval(outputs_of(result)["o0"]) == "hello cli hello cli "


def test_inputs_not_given_keep_the_task_defaults(tasks_file: Path) -> None:
    result = invoke("run", str(tasks_file), "hello")
    assert result.exit_code == 0, result.output
    assert ast.literal_eval(outputs_of(result)["o0"]) == "hello world " * 3


TYPED_CASES = [
    ("int", "7", "int:7"),
    ("float", "2.5", "float:2.5"),
    ("str", "hi there", "str:'hi there'"),
    ("list[int]", "[1, 2]", "list:[1, 2]"),
    ("dict[str, float]", '{"a": 1}', "dict:{'a': 1.0}"),
    ("tuple[int, str]", '[1, "z"]', "tuple:(1, 'z')"),
    ("list", '["x", 2]', "list:['x', 2]"),
    ("Point", '{"x": 1}', "Point:Point(x=1, y=0.0)"),
    ("Point", "{tmp}/point.yaml", "Point:Point(x=3, y=1.5)"),
    ("Cfg", "{tmp}/cfg.json", "Cfg:Cfg(name='n', tags=['a'])"),
    ("Cfg", '{"name": "q"}', "Cfg:Cfg(name='q', tags=[])"),
    (
        "datetime.datetime",
        "2024-01-02T03:04:05Z",
        "datetime:datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)",
    ),
    ("datetime.date", "2024-02-03", "date:datetime.date(2024, 2, 3)"),
    ("datetime.timedelta", "P1DT2H", "timedelta:datetime.timedelta(days=1, seconds=7200)"),
    ("datetime.timedelta", "01:30", "timedelta:datetime.timedelta(seconds=5400)"),
    ("datetime.timedelta", "10 days", "timedelta:datetime.timedelta(days=10)"),
    ("datetime.timedelta", "90s", "timedelta:datetime.timedelta(seconds=90)"),
    ("Color", "green", "Color:<Color.GREEN: 'green'>"),
    ('Literal["a", "b"]', "b", "str:'b'"),
    ("Literal[1, 2]", "2", "int:2"),
    ("Optional[int]", "4", "int:4"),
    ("Optional[int]", "none", "NoneType:None"),
    ("int | str", "5", "int:5"),
    ("int | str", "five", "str:'five'"),
]


@pytest.mark.parametrize(("hint", "text", "expected"), TYPED_CASES)
def test_typed_inputs_reach_the_task(tmp_path: Path, hint: str, text: str, expected: str) -> None:
    (tmp_path / "point.yaml").write_text("x: 3\ny: 1.5\n", encoding="utf-8")
    (tmp_path / "cfg.json").write_text('{"name": "n", "tags": ["a"]}', encoding="utf-8")
    path = write_tasks(
        tmp_path,
        f"""
        @env.task
        def echo(v: {hint}) -> str:
            return f"{{type(v).__name__}}:{{v!r}}"
        """,
    )
    result = invoke("run", str(path), "echo", "--v", text.replace("{tmp}", str(tmp_path)))
    assert result.exit_code == 0, result.output
    assert ast.literal_eval(outputs_of(result)["o0"]) == expected


@pytest.mark.parametrize(("flag", "expected"), [((), "True"), (("--v",), "True"), (("--no-v",), "False")])
def test_bool_inputs_are_flags(tmp_path: Path, flag: tuple[str, ...], expected: str) -> None:
    path = write_tasks(tmp_path, "@env.task\ndef echo(v: bool = True) -> str:\n    return repr(v)\n")
    result = invoke("run", str(path), "echo", *flag)
    assert result.exit_code == 0, result.output
    assert ast.literal_eval(outputs_of(result)["o0"]) == expected


@pytest.mark.parametrize(
    ("hint", "text", "complaint"),
    [
        ("int", "x", "is not a valid integer"),
        ("Color", "blue", "'red', 'green'"),
        ("list[int]", "[1, ", "neither JSON"),
        ("list[int]", '["q"]', "not a valid list[int]"),
        ("datetime.timedelta", "soon", "cannot read 'soon' as a duration"),
    ],
)
def test_bad_input_values_are_usage_errors(tmp_path: Path, hint: str, text: str, complaint: str) -> None:
    path = write_tasks(tmp_path, f"@env.task\ndef echo(v: {hint}) -> str:\n    return repr(v)\n")
    result = invoke("run", str(path), "echo", "--v", text)
    assert result.exit_code == 2
    assert "'--v'" in result.stderr
    assert complaint in result.stderr


def test_a_missing_required_input_exits_2(tasks_file: Path) -> None:
    result = invoke("run", str(tasks_file), "need", "--a", "1")
    assert result.exit_code == 2
    assert "Missing option '--b'" in result.stderr


def test_task_help_lists_inputs_types_defaults_and_docstring(tasks_file: Path) -> None:
    result = invoke("run", str(tasks_file), "hello", "--help")
    assert result.exit_code == 0
    assert "Greet someone." in result.stdout
    assert "Says hello x times." in result.stdout
    assert "--x INTEGER" in result.stdout
    assert "[default: 3]" in result.stdout
    assert "--who TEXT" in result.stdout
    assert "[default: world]" in result.stdout
    required = invoke("run", str(tasks_file), "need", "--help")
    assert "--b FLOAT" in required.stdout
    assert "[required]" in required.stdout


def test_file_help_lists_the_tasks(tasks_file: Path) -> None:
    result = invoke("run", str(tasks_file), "--help")
    assert result.exit_code == 0
    for name in ("hello", "need", "boom", "parent"):
        assert f"\n  {name}" in result.stdout
    assert "Greet someone." in result.stdout


def test_custom_context_reaches_the_task(tasks_file: Path) -> None:
    result = invoke("run", "--custom-context", "team=ml", "--custom-context", "tier=gold", str(tasks_file), "context")
    assert result.exit_code == 0, result.output
    assert ast.literal_eval(outputs_of(result)["o0"]) == {"team": "ml", "tier": "gold"}


def test_env_sets_an_environment_variable_seen_by_the_task(tasks_file: Path) -> None:
    result = invoke("run", "-e", "CLI_TEST_VAR=from-cli", str(tasks_file), "read_env", "--key", "CLI_TEST_VAR")
    assert result.exit_code == 0, result.output
    assert ast.literal_eval(outputs_of(result)["o0"]) == "from-cli"
    assert "CLI_TEST_VAR" not in os.environ


def test_a_bad_key_value_names_the_flag(tasks_file: Path) -> None:
    result = invoke("run", "--env", "NOEQUALS", str(tasks_file), "hello")
    assert result.exit_code == 2
    assert "'-e' / '--env'" in result.stderr
    assert "KEY=VALUE" in result.stderr


def test_config_defaults_apply_unless_a_flag_is_given(tmp_path: Path, tasks_file: Path) -> None:
    config = tmp_path / "cli.yaml"
    config.write_text("run:\n  project: from-config\n", encoding="utf-8")
    from_config = invoke("-c", str(config), "run", str(tasks_file), "project")
    assert from_config.exit_code == 0, from_config.output
    assert ast.literal_eval(outputs_of(from_config)["o0"]) == "from-config"
    from_flag = invoke("-c", str(config), "run", "-p", "from-flag", str(tasks_file), "project")
    assert ast.literal_eval(outputs_of(from_flag)["o0"]) == "from-flag"


def test_a_failing_task_exits_1_with_its_code_and_traceback(tasks_file: Path) -> None:
    result = invoke("run", str(tasks_file), "boom", "--message", "disk full")
    assert result.exit_code == 1
    assert "code=ValueError" in result.stderr
    assert "disk full" in result.stderr
    assert "task cli_tests.boom" in result.stderr
    assert f'File "{tasks_file}"' in result.stderr
    assert result.stdout == ""


def test_async_tasks_and_child_actions_run(tasks_file: Path) -> None:
    result = invoke("run", str(tasks_file), "parent", "--v", "20")
    assert result.exit_code == 0, result.output
    assert outputs_of(result) == {"o0": "41"}


def test_every_named_output_gets_a_line(tasks_file: Path) -> None:
    result = invoke("run", str(tasks_file), "split", "--n", "4")
    assert result.exit_code == 0, result.output
    assert outputs_of(result) == {"total": "8", "label": "'n=4'"}


def test_dry_run_executes_nothing(tmp_path: Path, tasks_file: Path) -> None:
    marker = tmp_path / "marker"
    result = invoke("run", "--dry-run", str(tasks_file), "touch", "--path", str(marker))
    assert result.exit_code == 0, result.output
    assert "dry run" in result.stdout
    assert not marker.exists()


def test_bad_mode_is_rejected(tasks_file: Path) -> None:
    result = invoke("run", "--mode", "foo", str(tasks_file), "hello")
    assert result.exit_code == 2
    assert "'--mode'" in result.stderr
    assert "'foo'" in result.stderr


def test_local_contradicting_mode_is_rejected(tasks_file: Path) -> None:
    result = invoke("run", "--local", "--mode", "remote", str(tasks_file), "hello")
    assert result.exit_code == 2
    assert "--local contradicts --mode remote" in result.stderr


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [(("--name", "bad name"), "invalid run name"), (("--max-action-concurrency", "1"), "max_action_concurrency")],
)
def test_run_option_errors_exit_2(tasks_file: Path, flags: tuple[str, ...], complaint: str) -> None:
    result = invoke("run", *flags, str(tasks_file), "hello")
    assert result.exit_code == 2
    assert complaint in result.stderr


def test_an_unknown_task_lists_the_tasks_found(tasks_file: Path) -> None:
    result = invoke("run", str(tasks_file), "nope")
    assert result.exit_code == 2
    assert "no task 'nope'" in result.stderr
    assert "boom, child, context, hello, need, parent, project, read_env, split, touch" in result.stderr


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("run", str(tmp_path / "absent.py"), "hello")
    assert result.exit_code == 2
    assert "no such python file" in result.stderr


def test_a_file_failing_to_import_exits_1_with_its_traceback(tmp_path: Path) -> None:
    path = tmp_path / f"broken_{uuid.uuid4().hex[:12]}.py"
    path.write_text("raise RuntimeError('import-time failure')\n", encoding="utf-8")
    result = invoke("run", str(path), "hello")
    assert result.exit_code == 1
    assert "RuntimeError: import-time failure" in result.stderr
    assert f'File "{path}", line 1' in result.stderr


def test_a_dotted_module_name_is_accepted(tasks_file: Path) -> None:
    result = invoke("run", tasks_file.stem, "hello", "--x", "1")
    assert result.exit_code == 0, result.output
    assert ast.literal_eval(outputs_of(result)["o0"]) == "hello world "


def test_a_file_in_a_package_is_imported_under_its_package(tmp_path: Path) -> None:
    package = tmp_path / f"pkg_{uuid.uuid4().hex[:12]}"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    path = write_tasks(package, "@env.task\ndef where() -> str:\n    return __name__\n")
    result = invoke("run", str(path), "where")
    assert result.exit_code == 0, result.output
    assert ast.literal_eval(outputs_of(result)["o0"]) == f"{package.name}.{path.stem}"


def test_a_file_shadowing_an_imported_module_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "json.py"
    path.write_text(HEADER, encoding="utf-8")
    result = invoke("run", str(path), "hello")
    assert result.exit_code == 2
    assert "already taken" in result.stderr


def test_the_console_script_runs_a_task_and_reports_failure(tmp_path: Path, tasks_file: Path) -> None:
    script = Path(sys.executable).parent / "flyte-celery"
    assert script.is_file(), f"console script not installed at {script}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLYTE_CELERY_")}
    env["FLYTE_CELERY_LOCAL_CACHE_PATH"] = str(tmp_path / "cache" / "cache.db")
    ok = subprocess.run(
        [str(script), "run", "--name", "cli-proc-1", str(tasks_file), "hello", "--x", "1"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == ["run: cli-proc-1", "o0='hello world '"]
    failed = subprocess.run(
        [str(script), "run", str(tasks_file), "boom"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert failed.returncode == 1
    assert "code=ValueError" in failed.stderr
    assert "it broke" in failed.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P1DT2H", dt.timedelta(days=1, hours=2)),
        ("PT1.5S", dt.timedelta(seconds=1.5)),
        ("P2W", dt.timedelta(weeks=2)),
        ("1:24", dt.timedelta(hours=1, minutes=24)),
        ("1:24:30", dt.timedelta(hours=1, minutes=24, seconds=30)),
        ("10 days", dt.timedelta(days=10)),
        ("1 minute", dt.timedelta(minutes=1)),
        ("1h30m", dt.timedelta(hours=1, minutes=30)),
        ("2 hours, 5 min", dt.timedelta(hours=2, minutes=5)),
        ("1.5 hours", dt.timedelta(minutes=90)),
        ("250ms", dt.timedelta(milliseconds=250)),
        ("45", dt.timedelta(seconds=45)),
        ("-5 min", dt.timedelta(minutes=-5)),
    ],
)
def test_parse_duration(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "P", "PT", "10 parsecs", "1:99", "days 10", "5 days later"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="as a duration"):
        parse_duration(text)


def test_parse_datetime_and_date_words_and_offsets() -> None:
    before = dt.datetime.now()
    now = parse_datetime("now")
    assert before <= now <= dt.datetime.now()
    assert parse_datetime("today") == dt.datetime.combine(dt.date.today(), dt.time())
    assert parse_datetime("2024-03-01T00:00:00 - P1D") == dt.datetime(2024, 2, 29)
    assert parse_datetime("2024-03-01 + 90 min") == dt.datetime(2024, 3, 1, 1, 30)
    assert parse_date("2024-03-01 - 1 day") == dt.date(2024, 2, 29)
    with pytest.raises(ValueError, match="as a datetime"):
        parse_datetime("yesterday-ish")
    with pytest.raises(ValueError, match="as a date"):
        parse_date("2024-13-01")


def test_unsupported_input_types_fail_only_when_given() -> None:
    class Opaque:
        pass

    param_type = click_type(Opaque)
    with pytest.raises(click.BadParameter, match="cannot be given on the command line"):
        param_type.convert("x", None, None)
