"""Click options for task inputs: each `--<input> VALUE` is parsed into the Python type of the task's signature."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Union

import click
import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.errors import PydanticSchemaGenerationError

if TYPE_CHECKING:
    ParamType = click.ParamType[Any]
else:  # click < 8.2 has no type parameters
    ParamType = click.ParamType

NO_DEFAULT: Final[Any] = inspect.Parameter.empty
STRUCTURED_FILE_SUFFIXES: Final = (".json", ".yaml", ".yml")
NONE_WORDS: Final = frozenset({"none", "null"})
_NUMBER: Final = r"\d+(?:\.\d+)?"
_ISO_DURATION: Final = re.compile(
    rf"P(?!$)(?:(?P<weeks>{_NUMBER})W)?(?:(?P<days>{_NUMBER})D)?"
    rf"(?:T(?=\d)(?:(?P<hours>{_NUMBER})H)?(?:(?P<minutes>{_NUMBER})M)?(?:(?P<seconds>{_NUMBER})S)?)?",
    re.IGNORECASE,
)
_CLOCK_DURATION: Final = re.compile(r"(?P<hours>\d+):(?P<minutes>[0-5]?\d)(?::(?P<seconds>[0-5]?\d(?:\.\d+)?))?")
_UNIT_DURATION_PART: Final = re.compile(rf"\s*(?P<number>{_NUMBER})\s*(?P<unit>[a-z]+)\s*,?\s*", re.IGNORECASE)
_DURATION_UNITS: Final = {
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), "weeks"),
    **dict.fromkeys(("d", "day", "days"), "days"),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), "hours"),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), "minutes"),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), "seconds"),
    **dict.fromkeys(("ms", "millisecond", "milliseconds"), "milliseconds"),
}
# "<time> - <duration>" / "<time> + <duration>", e.g. "now - P1D" (as Flyte's CLI accepts).
_RELATIVE_TIME: Final = re.compile(r"(?P<base>.+?)\s+(?P<sign>[-+])\s+(?P<delta>.+)")


def parse_duration(text: str) -> dt.timedelta:
    """A duration from ISO 8601 (`P1DT2H`), a clock (`HH:MM[:SS]`), `<number> <unit>` pairs (`10 days`, `1h30m`,
    `90s`) or a bare number of seconds; a leading `-` negates it.

    Raises:
        ValueError: If `text` is none of these.
    """
    stripped = text.strip()
    sign = -1 if stripped.startswith("-") else 1
    body = stripped.lstrip("+-").strip()
    for pattern in (_ISO_DURATION, _CLOCK_DURATION):
        match = pattern.fullmatch(body)
        if match:
            parts = {unit: float(value) for unit, value in match.groupdict().items() if value}
            return sign * dt.timedelta(**parts)
    if re.fullmatch(_NUMBER, body):
        return sign * dt.timedelta(seconds=float(body))
    total = dt.timedelta()
    position = 0
    for match in _UNIT_DURATION_PART.finditer(body):
        unit = _DURATION_UNITS.get(match["unit"].lower())
        if match.start() != position or unit is None:
            break
        total += dt.timedelta(**{unit: float(match["number"])})
        position = match.end()
    if body and position == len(body):
        return sign * total
    raise ValueError(
        f"cannot read {text!r} as a duration: use ISO 8601 (P1DT2H), HH:MM[:SS], or '<number> <unit>' (10 days, 90s)"
    )


def parse_datetime(text: str) -> dt.datetime:
    """A datetime from ISO 8601, `now` or `today` (local, naive, as Flyte), optionally `<time> -/+ <duration>`.

    Raises:
        ValueError: If `text` cannot be read.
    """
    relative = _RELATIVE_TIME.fullmatch(text.strip())
    if relative:
        base, delta = parse_datetime(relative["base"]), parse_duration(relative["delta"])
        return base - delta if relative["sign"] == "-" else base + delta
    word = text.strip().lower()
    if word == "now":
        return dt.datetime.now()
    if word == "today":
        return dt.datetime.combine(dt.date.today(), dt.time())
    iso = text.strip()
    # datetime.fromisoformat only learned the "Z" suffix in Python 3.11.
    iso = iso[:-1] + "+00:00" if iso[-1:] in ("Z", "z") else iso
    try:
        return dt.datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a datetime: use ISO 8601, 'now' or 'today'") from None


def parse_date(text: str) -> dt.date:
    """A date from ISO 8601 (`2024-05-01`) or `today`, optionally `<date> -/+ <duration>`.

    Raises:
        ValueError: If `text` cannot be read.
    """
    relative = _RELATIVE_TIME.fullmatch(text.strip())
    if relative:
        base, delta = parse_date(relative["base"]), parse_duration(relative["delta"])
        return base - delta if relative["sign"] == "-" else base + delta
    if text.strip().lower() == "today":
        return dt.date.today()
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a date: use YYYY-MM-DD or 'today'") from None


class ParsedType(ParamType):
    """A value read from text by `parse`; values that already have the type (defaults) pass through."""

    def __init__(self, name: str, parse: typing.Callable[[str], Any], python_type: type) -> None:
        self.name = name
        self._parse = parse
        self._python_type = python_type

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, self._python_type):
            return value
        try:
            return self._parse(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class MappedChoice(ParamType):
    """A choice among fixed texts, each standing for a value (an enum member by its value, a Literal value)."""

    name = "choice"

    def __init__(self, choices: Mapping[str, Any], aliases: Mapping[str, Any] | None = None) -> None:
        self.choices = dict(choices)
        self._aliases = dict(aliases or {})

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        if value in self.choices:
            return self.choices[value]
        if value in self._aliases:
            return self._aliases[value]
        return self.fail(f"{value!r} is not one of {', '.join(map(repr, self.choices))}", param, ctx)


class PydanticType(ParamType):
    """Any type pydantic validates; `structured` ones (containers, dataclasses, models) read JSON or a JSON/YAML file,
    the others (Path, UUID, Decimal, ...) read the text itself first."""

    def __init__(self, hint: Any, *, structured: bool) -> None:
        self.name = "json" if structured else _type_name(hint)
        self._hint = hint
        self._adapter: TypeAdapter[Any] = TypeAdapter(hint)
        self._structured = structured

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return self._validate(value, param, ctx)
        if not self._structured:
            try:
                return self._adapter.validate_python(value)
            except ValidationError:
                pass  # maybe JSON, e.g. a number for a Decimal
        return self._validate(self._load(value, param, ctx), param, ctx)

    def _load(self, text: str, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if text.lower().endswith(STRUCTURED_FILE_SUFFIXES) and Path(text).is_file():
            try:
                # YAML is a superset of JSON, so one loader reads both kinds of file.
                return yaml.safe_load(Path(text).read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                self.fail(f"cannot read {text}: {exc}", param, ctx)
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            self.fail(f"{text!r} is neither JSON ({exc}) nor an existing .json/.yaml file", param, ctx)

    def _validate(self, data: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return self._adapter.validate_python(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, error['loc'])) or 'value'}: {error['msg']}" for error in exc.errors()
            )
            self.fail(f"not a valid {_type_name(self._hint)}: {problems}", param, ctx)


class AnyType(ParamType):
    """An untyped input: the JSON value of the text when it is JSON (`5`, `true`, `[1]`), else the text."""

    name = "any"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value


class AnyOfType(ParamType):
    """The first member type that accepts the text; `str` is tried last, and `none`/`null` give None if allowed."""

    def __init__(self, members: list[ParamType], *, optional: bool) -> None:
        # Text is always a valid str, so trying str first would shadow every other member.
        self._members = sorted(members, key=lambda member: member is click.STRING)
        self._optional = optional
        self.name = " | ".join(member.name for member in self._members) + (" | none" if optional else "")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or (self._optional and isinstance(value, str) and value.strip().lower() in NONE_WORDS):
            return None
        errors = []
        for member in self._members:
            try:
                return member.convert(value, param, ctx)
            except click.BadParameter as exc:
                errors.append(exc.message)
        return self.fail(f"{value!r} fits none of {self.name}: " + "; ".join(errors), param, ctx)


class UnsupportedType(ParamType):
    """A type that cannot be given on the command line; the input keeps its default when it has one."""

    def __init__(self, hint: Any) -> None:
        self.name = _type_name(hint)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        self.fail(f"inputs of type {self.name} cannot be given on the command line", param, ctx)


def input_option(name: str, hint: Any, default: Any) -> click.Option:
    """The `--<name>` option for one task input; it has no click default, so an input not given keeps the task's.

    Args:
        name: The input's name, used verbatim as the option name (as Flyte's CLI does).
        hint: The input's type hint.
        default: The input's default, or `inspect.Parameter.empty` when the input is required.
    """
    required = default is NO_DEFAULT
    # The default goes into the help text: click's own display wraps a given text in parentheses.
    help_text = _type_name(hint) + ("" if required else f"  [default: {_default_text(default)}]")
    if _strip_optional(_unwrap(hint))[0] is bool:
        return click.Option([f"--{name}/--no-{name}", name], required=required, help=help_text, show_default=False)
    param_type = click_type(hint)
    metavar = _metavar(param_type)
    return click.Option(
        [f"--{name}", name],
        type=param_type,
        required=required,
        help=help_text,
        show_default=False,
        metavar=metavar,
    )


def click_type(hint: Any) -> ParamType:
    """The click type that reads a command-line text into a value of `hint`."""
    hint = _unwrap(hint)
    inner, optional = _strip_optional(hint)
    if typing.get_origin(inner) in (Union, types.UnionType):
        members = [click_type(member) for member in typing.get_args(inner)]
        return AnyOfType(members, optional=optional)
    if optional and inner is not str and not _is_structured(inner):
        return AnyOfType([click_type(inner)], optional=True)
    if _is_structured(inner):
        return PydanticType(hint, structured=True)
    simple = _simple_type(inner)
    if simple is not None:
        return simple
    try:
        return PydanticType(inner, structured=False)
    except (PydanticSchemaGenerationError, TypeError):
        return UnsupportedType(inner)


def _simple_type(hint: Any) -> ParamType | None:
    if hint is Any or hint is NO_DEFAULT or hint is object:
        return AnyType()
    if hint is bool:
        return click.BOOL
    if hint is int:
        return click.INT
    if hint is float:
        return click.FLOAT
    if hint is str:
        return click.STRING
    if hint is dt.datetime:
        return ParsedType("datetime", parse_datetime, dt.datetime)
    if hint is dt.date:
        return ParsedType("date", parse_date, dt.date)
    if hint is dt.timedelta:
        return ParsedType("duration", parse_duration, dt.timedelta)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return MappedChoice({str(m.value): m for m in hint}, aliases={m.name: m for m in hint})
    if typing.get_origin(hint) is Literal:
        return MappedChoice({str(value): value for value in typing.get_args(hint)})
    return None


def _is_structured(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (list, dict, tuple, set, frozenset) or hint in (list, dict, tuple, set, frozenset):
        return True
    if isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields"):
        return True  # NamedTuple
    if typing.is_typeddict(hint):
        return True
    return isinstance(hint, type) and (dataclasses.is_dataclass(hint) or issubclass(hint, BaseModel))


def _unwrap(hint: Any) -> Any:
    while typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    return hint


def _strip_optional(hint: Any) -> tuple[Any, bool]:
    if typing.get_origin(hint) not in (Union, types.UnionType):
        return hint, False
    members = [member for member in typing.get_args(hint) if member is not type(None)]
    optional = len(members) < len(typing.get_args(hint))
    if len(members) == 1:
        return members[0], optional
    return Union[tuple(members)], optional


def _metavar(param_type: ParamType) -> str:
    if isinstance(param_type, MappedChoice):
        return "[" + "|".join(param_type.choices) + "]"
    if isinstance(param_type, PydanticType) and param_type.name == "json":
        return "JSON|FILE"
    return param_type.name.upper()


def _type_name(hint: Any) -> str:
    if hint is NO_DEFAULT or hint is Any:
        return "any"
    if isinstance(hint, type) and not typing.get_args(hint):
        suffix = " (enum)" if issubclass(hint, enum.Enum) else ""
        return hint.__name__ + suffix
    return repr(hint).replace("typing.", "")


def _default_text(default: Any) -> str:
    if isinstance(default, enum.Enum):
        return str(default.value)
    if isinstance(default, (dt.datetime, dt.date, dt.timedelta, Path)) or (isinstance(default, str) and default):
        return str(default)
    return repr(default)
