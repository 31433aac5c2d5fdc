"""The option registry: one declaration per option drives everything else.

Plugins (the core included) declare options through ``pounce_add_options``.
From the registry come the CLI parser (:mod:`pounce.core.cli`), TOML and
environment validation (:mod:`pounce.core.config`), ``pounce --help`` and the
generated reference in ``docs/configuration/``. Nothing about an option is
written down twice.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

_TYPES = ("str", "int", "float", "bool", "list", "table")


class OptionValueError(ValueError):
    """A value did not fit an option; the text says what was expected."""


@dataclass(frozen=True)
class Option:
    """One config option.

    ``cli`` lists the long flags (first is the main one). ``cli_style`` says
    how a bool is spelled on the command line: ``"switch"`` gives ``--x`` and
    ``--no-x``, ``"value"`` takes ``--x true|false`` like uvicorn does for some
    flags. A list option given on the CLI splits on commas and may repeat.
    ``cli_split=False`` keeps commas inside values (``--header``).
    A ``table`` is a TOML table with string keys (``[static] mounts``): as
    text (environment, CLI) it is ``KEY=VALUE`` items, comma-separated, and
    its flag may repeat (``--static /a=dir --static /b=dir2``); what its
    values may be beyond strings is the option's ``validator``'s business.
    ``aliases`` maps extra accepted spellings (such as uvicorn's ``0/1/2`` for
    ``cert_reqs``) to canonical values.
    """

    section: str
    key: str
    type: str
    default: Any
    help: str
    cli: tuple[str, ...] = ()
    cli_style: str = "switch"
    cli_split: bool = True
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    auto: bool = False
    aliases: dict[str, Any] = field(default_factory=dict)
    metavar: str | None = None
    plugin: str = "core"
    validator: Callable[[Any], None] | None = None

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def env(self) -> str:
        return f"POUNCE_{self.section.upper()}_{self.key.upper()}"

    @property
    def override_name(self) -> str:
        """The keyword used by ``pounce.run(**overrides)`` and ``ServerConfig.load``."""
        return self.key if self.section == "server" else f"{self.section}_{self.key}"

    def describe(self) -> str:
        """What a valid value looks like, for error messages and docs."""
        if self.choices:
            text = " | ".join(str(c) for c in self.choices)
        elif self.type == "int":
            text = "an integer"
        elif self.type == "float":
            text = "a number"
        elif self.type == "bool":
            text = "true or false"
        elif self.type == "list":
            text = "a list of strings"
        elif self.type == "table":
            text = "a table (KEY=VALUE items as text)"
        else:
            text = "a string"
        if self.min is not None and self.max is not None:
            text += f" from {_num(self.min)} to {_num(self.max)}"
        elif self.min is not None:
            text += f" >= {_num(self.min)}"
        elif self.max is not None:
            text += f" <= {_num(self.max)}"
        if self.auto:
            text += ' or "auto"'
        return text

    def coerce(self, value: Any, *, from_text: bool) -> Any:
        """Check and convert ``value``; ``from_text`` for env vars and CLI strings."""
        if value is None and self.nullable:
            return None
        if isinstance(value, (str, int)) and not isinstance(value, bool) and value in self.aliases:
            value = self.aliases[value]
        if self.auto and value == "auto":
            return "auto"
        if from_text and isinstance(value, str):
            value = self._parse_text(value)
        result = self._check_type(value)
        if self.choices and result not in self.choices:
            raise OptionValueError(self.describe())
        if self.type in ("int", "float"):
            if (self.min is not None and result < self.min) or (
                self.max is not None and result > self.max
            ):
                raise OptionValueError(self.describe())
        if self.validator is not None:
            self.validator(result)
        return result

    def _parse_text(self, text: str) -> Any:
        try:
            if self.type == "int":
                return int(text)
            if self.type == "float":
                return float(text)
        except ValueError:
            raise OptionValueError(self.describe()) from None
        if self.type == "bool":
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise OptionValueError(self.describe())
        if self.type == "list":
            return [part.strip() for part in text.split(",") if part.strip()]
        if self.type == "table":
            return table_from_items([p.strip() for p in text.split(",") if p.strip()], self.describe())
        return text

    def _check_type(self, value: Any) -> Any:
        kind = self.type
        if kind == "bool":
            if isinstance(value, bool):
                return value
        elif kind == "int":
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif kind == "float":
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        elif kind == "list":
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                return tuple(value)
        elif kind == "table":
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                value = table_from_items(value, self.describe())  # a repeated flag's items
            if isinstance(value, dict) and all(isinstance(k, str) for k in value):
                # A copy (nested tables too): the frozen config owns its values.
                return {k: dict(v) if isinstance(v, dict) else v for k, v in value.items()}
        elif isinstance(value, str):
            return value
        raise OptionValueError(self.describe())


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def table_from_items(items: Sequence[str], expected: str) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` (CLI flags, an environment variable) as a table."""
    table: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise OptionValueError(expected)
        table[key.strip()] = value.strip()
    return table


def describe_found(value: Any) -> str:
    """How a found value is shown in an error: its TOML-ish spelling and type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(describe_found(v) for v in value) + "]"
    if isinstance(value, dict):
        return "a table"
    return str(value)


class OptionRegistry:
    """All declared options, by section and key.

    Handed to ``pounce_add_options``; call :meth:`add` for each option.
    """

    def __init__(self) -> None:
        self._options: dict[tuple[str, str], Option] = {}
        self._current_plugin = "core"

    def add(
        self,
        section: str,
        key: str,
        type: str,
        default: Any,
        help: str,
        *,
        cli: str | Sequence[str] | None = None,
        **extra: Any,
    ) -> Option:
        """Declare ``[section] key``. ``type`` is one of str, int, float, bool, list, table."""
        if type not in _TYPES:
            raise ValueError(f"option {section}.{key}: type must be one of {_TYPES}")
        if (section, key) in self._options:
            raise ValueError(f"option {section}.{key} is declared twice")
        flags: tuple[str, ...] = (cli,) if isinstance(cli, str) else tuple(cli or ())
        extra.setdefault("plugin", self._current_plugin)
        if type == "list" and isinstance(default, list):
            default = tuple(default)
        option = Option(section, key, type, default, help, cli=flags, **extra)
        self._options[(section, key)] = option
        return option

    def get(self, section: str, key: str) -> Option | None:
        return self._options.get((section, key))

    def sections(self) -> list[str]:
        seen: dict[str, None] = {}
        for section, _ in self._options:
            seen[section] = None
        return list(seen)

    def in_section(self, section: str) -> list[Option]:
        return [o for (s, _), o in self._options.items() if s == section]

    def by_override_name(self) -> dict[str, Option]:
        return {o.override_name: o for o in self._options.values()}

    def suggest(self, section: str, key: str) -> str | None:
        """A close key name for "did you mean", or None."""
        keys = [k for (s, k) in self._options if s == section]
        match = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
        return match[0] if match else None

    def suggest_section(self, section: str) -> str | None:
        match = difflib.get_close_matches(section, self.sections(), n=1, cutoff=0.6)
        return match[0] if match else None

    def __iter__(self) -> Iterator[Option]:
        return iter(self._options.values())

    def __len__(self) -> int:
        return len(self._options)

    def __contains__(self, item: object) -> bool:
        return item in self._options
