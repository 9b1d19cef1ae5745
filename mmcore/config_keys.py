"""Config keys: typed dataclass fields that presets, config files and command-line flags set.

A config dataclass declares each field's allowed values and ``--help`` text in its metadata
(``between``, ``one_of``, ``flag`` ...); ``dataclass_keys`` turns its fields into
:class:`ConfigKey` records, from which ``mmvideo.commands.options.key_options`` makes the flags. The swap's
config (``mmvideo.config``) and the training config (``train.config``) are both declared so.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, fields
from typing import Any, Literal


@dataclass(frozen=True)
class Range:
    """The values a numeric key allows: ``low`` to ``high`` inclusive (None: unbounded);
    ``open_low`` excludes ``low`` itself (a noise level must be above 0)."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False

    def __contains__(self, value: float) -> bool:
        if math.isnan(value):
            return False  # TOML has nan; it compares false with every bound
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or value <= self.high

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            return f"from {self.low} to {self.high}"
        if self.low is not None:
            return f"{'>' if self.open_low else '>='} {self.low}"
        return f"<= {self.high}"


@dataclass(frozen=True)
class CommaList:
    """The values a comma-list key allows (``mask = "hull,hands"``): names from ``items``, each
    at most once, ``required`` among them."""

    items: tuple[str, ...]
    required: str

    def problem(self, value: str) -> str | None:
        """What is wrong with ``value``, naming the bad item; None when it is allowed."""
        names = value.split(",")
        for name in names:
            if name not in self.items:
                return f"{name!r} is not one of them"
            if names.count(name) > 1:
                return f"{name!r} is given twice"
        return None if self.required in names else f"{self.required} is missing"

    def __contains__(self, value: str) -> bool:
        return self.problem(value) is None

    def __str__(self) -> str:
        return f"a comma list of {', '.join(self.items)} that includes {self.required}"


# Field metadata: each key's allowed values, declared beside it and checked by ``load_config``.
def between(low: float, high: float) -> dict[str, Range]:
    return {"range": Range(low, high)}


def at_least(low: float) -> dict[str, Range]:
    return {"range": Range(low)}


def above(low: float) -> dict[str, Range]:
    return {"range": Range(low, open_low=True)}


def one_of(choices: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Choices of a ``str`` key whose names live in a tuple elsewhere (a Literal lists its own)."""
    return {"choices": choices}


def comma_list(items: tuple[str, ...], required: str) -> dict[str, CommaList]:
    """A ``str`` key holding a comma list of names from ``items`` that includes ``required``."""
    return {"items": CommaList(items, required)}


def flag(help: str, name: str | None = None) -> dict[str, str | None]:
    """A key's ``--help`` text and, where a command keeps an older spelling, its flag name."""
    return {"help": help, "flag": name}


NO_FLAG = {"flag": ""}  # a field no command-line flag sets (``dataclass_keys`` leaves it out)


@dataclass(frozen=True)
class ConfigKey:
    """One configurable key: its slice, name, Python type and allowed values (choices for
    strings, a :class:`Range` for numbers)."""

    section: str
    name: str
    type: type
    choices: tuple[str, ...] | None
    optional: bool
    range: Range | None = None
    multiple: bool = False  # a list of strings (a flag given any number of times)
    default: Any = None
    help: str = ""  # ``--help`` text (field metadata, see ``flag``)
    flag_name: str | None = None  # the flag where it is not the name's (field metadata ``flag``)
    path: dict[str, bool] | None = None  # a file the flag names must pass these click.Path checks
    items: CommaList | None = None  # a comma list of names (field metadata ``comma_list``)

    @property
    def flag(self) -> str:
        return self.flag_name or "--" + self.name.replace("_", "-")

    def allowed(self) -> str:
        """The values this key takes, in words (what a refusal and ``--help`` say)."""
        if self.multiple:
            return "a string, any number of times"
        if self.choices is not None:
            return f"one of {', '.join(self.choices)}"
        if self.items is not None:
            return str(self.items)
        kind = {int: "an integer", float: "a number", str: "a string", bool: "a switch"}[self.type]
        return f"{kind} {self.range}" if self.range else kind


def dataclass_keys(section: str, cls: type) -> list[ConfigKey]:
    """The keys of one config dataclass, in declaration order, but for ``NO_FLAG`` fields: what
    a command generates its flags from (``mmvideo.commands.options.key_options``)."""
    hints = typing.get_type_hints(cls)
    return [
        _describe(section, f, hints[f.name]) for f in fields(cls) if f.metadata.get("flag") != ""
    ]


def _describe(section: str, f: dataclasses.Field, hint: Any) -> ConfigKey:
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        hint = next(a for a in args if a is not type(None))
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    cli = {
        "default": default,
        "help": f.metadata.get("help", ""),
        "flag_name": f.metadata.get("flag"),
        "path": f.metadata.get("path"),
        "items": f.metadata.get("items"),
    }
    if typing.get_origin(hint) is tuple:
        # a list key (``map``): strings, none by default, so presets need not set it
        return ConfigKey(section, f.name, str, None, True, multiple=True, **cli)
    if typing.get_origin(hint) is Literal:
        return ConfigKey(section, f.name, str, tuple(typing.get_args(hint)), optional, **cli)
    return ConfigKey(
        section,
        f.name,
        hint,
        f.metadata.get("choices"),
        optional,
        f.metadata.get("range"),
        **cli,
    )
