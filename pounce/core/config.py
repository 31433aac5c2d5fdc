"""Loading and freezing configuration.

Precedence, lowest first: option defaults, the TOML file, ``POUNCE_<SECTION>_<KEY>``
environment variables, then CLI flags and programmatic overrides. Every value
is checked against the option registry; a bad one is a :class:`ConfigError`
naming where it came from, the key, what was expected and what was found.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pounce.core.errors import ConfigError
from pounce.core.options import Option, OptionRegistry, OptionValueError, describe_found

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

Key = tuple[str, str]


class Section(Mapping[str, Any]):
    """A read-only view of one config section with attribute access."""

    __slots__ = ("_name", "_values")

    def __init__(self, name: str, values: dict[str, Any]) -> None:
        self._name = name
        self._values = values

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"config section [{self._name}] has no key {key!r}") from None

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Section({self._name!r}, {self._values!r})"


class ServerConfig:
    """The effective configuration, frozen.

    ``config.port`` reads ``[server] port``; ``config.tls.certfile`` (or
    ``config.get("tls", "certfile")``) reads other sections. ``origin(section,
    key)`` says where a value came from (``default``, the file path, ``env``,
    ``cli``, ``override``).
    """

    __slots__ = ("_values", "_origins", "_sections", "source", "registry")

    def __init__(
        self,
        values: dict[Key, Any],
        origins: dict[Key, str],
        registry: OptionRegistry,
        source: str | None = None,
    ) -> None:
        sections: dict[str, dict[str, Any]] = {}
        for (section, key), value in values.items():
            sections.setdefault(section, {})[key] = value
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_origins", dict(origins))
        object.__setattr__(self, "_sections", {n: Section(n, v) for n, v in sections.items()})
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "registry", registry)

    # -- construction ------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        plugins: Iterable[object] = (),
        env: Mapping[str, str] | None = None,
        discover: bool = True,
        **overrides: Any,
    ) -> ServerConfig:
        """Build the config from defaults, a TOML file, the environment and
        ``overrides`` (``host=``, ``port=``, ``tls_certfile=`` ...).

        Without ``path``, ``./pounce.toml`` or ``./pyproject.toml`` is read
        unless ``discover`` is false.
        """
        return load_config(
            path, overrides=overrides, env=env, extra_plugins=plugins,
            toml_data=None if (path is not None or discover) else {},
        )

    def with_defaults(self, registry: OptionRegistry) -> ServerConfig:
        """A copy that also has defaults for options ``registry`` knows and this
        config does not (options of plugins registered after loading)."""
        values = dict(self._values)
        origins = dict(self._origins)
        for option in registry:
            if (option.section, option.key) not in values:
                values[(option.section, option.key)] = option.default
                origins[(option.section, option.key)] = "default"
        return ServerConfig(values, origins, registry, self.source)

    def replace(self, **overrides: Any) -> ServerConfig:
        """A copy with some values changed, checked like programmatic overrides."""
        values = dict(self._values)
        origins = dict(self._origins)
        by_name = self.registry.by_override_name()
        for name, raw in overrides.items():
            option = by_name.get(name)
            if option is None:
                raise ConfigError(f"override {name}: unknown option")
            values[(option.section, option.key)] = _coerce(option, raw, f"override {name}", False)
            origins[(option.section, option.key)] = "override"
        return ServerConfig(values, origins, self.registry, self.source)

    # -- access ------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "_values")
        if ("server", name) in values:
            return values[("server", name)]
        sections = object.__getattribute__(self, "_sections")
        if name in sections:
            return sections[name]
        raise AttributeError(f"config has no server key or section {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("ServerConfig is frozen; use config.replace(...)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("ServerConfig is frozen")

    def get(self, section: str, key: str, default: Any = None) -> Any:
        return self._values.get((section, key), default)

    def section(self, name: str) -> Section:
        return self._sections.get(name, Section(name, {}))

    def origin(self, section: str, key: str) -> str:
        return self._origins.get((section, key), "default")

    def items(self) -> list[tuple[Key, Any]]:
        return sorted(self._values.items())

    def as_dict(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for (section, key), value in self._values.items():
            out.setdefault(section, {})[key] = list(value) if isinstance(value, tuple) else value
        return out

    def __repr__(self) -> str:
        return f"ServerConfig(source={self.source!r}, {self.as_dict()!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Process workers get the config pickled; the registry holds callables
        # from plugins, so it is rebuilt there rather than sent.
        return (_rebuild_config, (self._values, self._origins, self.source))


def _rebuild_config(values: dict[Key, Any], origins: dict[Key, str], source: str | None) -> ServerConfig:
    return ServerConfig(values, origins, OptionRegistry(), source)


# -- loading ----------------------------------------------------------------


def find_config_file(path: str | os.PathLike[str] | None) -> tuple[Path | None, bool]:
    """The file to read and whether it is a pyproject (``[tool.pounce]``)."""
    if path is not None:
        return Path(path), Path(path).name == "pyproject.toml"
    if Path("pounce.toml").is_file():
        return Path("pounce.toml"), False
    if Path("pyproject.toml").is_file():
        return Path("pyproject.toml"), True
    return None, False


def read_toml(path: Path, pyproject: bool) -> dict[str, Any]:
    """Parse the TOML file; errors name the file and the line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    try:
        parsed = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: invalid TOML: not UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    if pyproject:
        tool = parsed.get("tool", {})
        return tool.get("pounce", {}) if isinstance(tool, dict) else {}
    return parsed


def _coerce(option: Option, raw: Any, where: str, from_text: bool) -> Any:
    try:
        return option.coerce(raw, from_text=from_text)
    except OptionValueError as exc:
        raise ConfigError(f"{where}: expected {exc}, found {describe_found(raw)}") from None


def plugin_settings(
    toml: Mapping[str, Any], env: Mapping[str, str], cli: Mapping[Key, Any], overrides: Mapping[str, Any]
) -> tuple[list[str], list[str], bool]:
    """Read ``[plugins]`` before the registry exists: it decides which plugins
    (and so which options) there are. Values are checked properly later."""
    section = toml.get("plugins", {})
    section = section if isinstance(section, dict) else {}
    enable = list(section.get("enable", []) or [])
    disable = list(section.get("disable", []) or [])
    autoload = section.get("autoload", False) is True
    for key, target in (("ENABLE", enable), ("DISABLE", disable)):
        text = env.get(f"POUNCE_PLUGINS_{key}")
        if text is not None:
            target[:] = [p.strip() for p in text.split(",") if p.strip()]
    if env.get("POUNCE_PLUGINS_AUTOLOAD", "").lower() in ("1", "true", "yes", "on"):
        autoload = True
    enable += list(cli.get(("plugins", "enable"), ()) or ())
    disable += list(cli.get(("plugins", "disable"), ()) or ())
    enable += list(overrides.get("plugins_enable", ()) or ())
    disable += list(overrides.get("plugins_disable", ()) or ())
    if "plugins_autoload" in overrides:
        autoload = bool(overrides["plugins_autoload"])
    return (
        [p for p in enable if isinstance(p, str)],
        [p for p in disable if isinstance(p, str)],
        autoload,
    )


# The plugin manager that declares the options, set by pounce.core.plugins
# when it is imported (which ``import pounce`` always does first): the
# config knows it only as a factory, so that configuration does not depend
# on the plugin machinery that itself reads the config's types.
_MANAGER_FACTORY: list[Any] = []


def use_manager_factory(factory: Any) -> None:
    """Set the factory that builds the plugin manager whose options a
    config is checked against (``build_plugin_manager``)."""
    _MANAGER_FACTORY[:] = [factory]


def _default_manager_factory() -> Any:
    if not _MANAGER_FACTORY:  # pragma: no cover - import pounce always sets it
        raise RuntimeError("no plugin manager factory: import pounce first")
    return _MANAGER_FACTORY[0]


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    cli: Mapping[Key, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    extra_plugins: Iterable[object] = (),
    manager_factory: Any = None,
    toml_data: dict[str, Any] | None = None,
    require_app: bool = False,
) -> ServerConfig:
    """Merge every source into a frozen :class:`ServerConfig`.

    ``cli`` holds values the CLI parsed (still text, keyed by section/key);
    ``overrides`` holds Python values keyed by override name.
    """
    cli = cli or {}
    overrides = overrides or {}
    env = os.environ if env is None else env
    if toml_data is None:
        file_path, pyproject = find_config_file(path)
        toml_data = read_toml(file_path, pyproject) if file_path is not None else {}
    else:
        file_path = Path(path) if path is not None else None
    label = str(file_path) if file_path is not None else None
    if manager_factory is None:
        manager_factory = _default_manager_factory()
    enable, disable, autoload = plugin_settings(toml_data, env, cli, overrides)
    manager = manager_factory(enable=enable, disable=disable, autoload=autoload, extra=extra_plugins)
    registry = manager.registry
    values: dict[Key, Any] = {(o.section, o.key): o.default for o in registry}
    origins: dict[Key, str] = {}

    # The TOML file: typed values, every section and key must be known.
    where_file = label or "config"
    for section, table in toml_data.items():
        if not isinstance(table, dict):
            raise ConfigError(
                f"{where_file}: {section}: expected a [section] table, found {describe_found(table)}"
            )
        if not registry.in_section(section):
            hint = registry.suggest_section(section)
            owner = manager.section_owner(section)
            extra = f" (did you mean [{hint}]?)" if hint else ""
            if owner:
                extra = f" (it belongs to plugin {owner!r}, which is not enabled)"
            raise ConfigError(f"{where_file}: unknown section [{section}]{extra}")
        for key, raw in table.items():
            option = registry.get(section, key)
            if option is None:
                hint = registry.suggest(section, key)
                extra = f" (did you mean {hint!r}?)" if hint else ""
                raise ConfigError(f"{where_file}: [{section}] unknown key {key!r}{extra}")
            values[(section, key)] = _coerce(option, raw, f"{where_file}: [{section}] {key}", False)
            origins[(section, key)] = where_file

    # The environment: text, only names that match a declared option.
    for option in registry:
        text = env.get(option.env)
        if text is not None:
            values[(option.section, option.key)] = _coerce(
                option, text, f"environment {option.env}", True
            )
            origins[(option.section, option.key)] = "env"

    # CLI flags: text (or already-typed switches), keyed by section/key.
    for (section, key), raw in cli.items():
        option = registry.get(section, key)
        if option is None:
            continue
        flag = option.cli[0] if option.cli else f"{section}.{key}"
        values[(section, key)] = _coerce(option, raw, flag, isinstance(raw, str))
        origins[(section, key)] = "cli"

    # Programmatic overrides: Python values keyed by override name.
    by_name = registry.by_override_name()
    for name, raw in overrides.items():
        option = by_name.get(name)
        if option is None:
            hint = _closest(name, by_name)
            extra = f" (did you mean {hint!r}?)" if hint else ""
            raise ConfigError(f"override {name}: unknown option{extra}")
        values[(option.section, option.key)] = _coerce(option, raw, f"override {name}", False)
        origins[(option.section, option.key)] = "override"

    config = ServerConfig(values, origins, registry, label)
    _check_whole(config, where_file, require_app)
    return config


def _closest(name: str, names: Iterable[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return match[0] if match else None


def _check_whole(config: ServerConfig, where: str, require_app: bool) -> None:
    """Rules that involve more than one key."""
    if require_app and not config.app:
        raise ConfigError(
            f"{where}: [server] app: expected \"module:attribute\", found nothing "
            "(give APP on the command line or set app in pounce.toml)"
        )
    if config.uds and config.fd is not None:
        raise ConfigError(f"{where}: [server] uds and fd: expected at most one, found both")
