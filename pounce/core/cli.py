"""The ``pounce`` command line, generated from the option registry.

Parsing happens twice: a small first pass reads ``--config``, ``--plugin`` and
``--no-plugin`` (they decide which plugins, and so which options, exist), then
the full parser is built from the registry and parses everything.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from pounce._version import __version__
from pounce.core.config import find_config_file, load_config, plugin_settings, read_toml
from pounce.core.errors import PounceError
from pounce.core.options import Option, OptionRegistry
from pounce.core.plugins import PounceManager, build_plugin_manager, culprit_error

PROG = "pounce"


def _dest(option: Option) -> str:
    return f"opt:{option.section}:{option.key}"


def _help(option: Option) -> str:
    default = option.default
    if isinstance(default, tuple):
        default = ",".join(default) or "none"
    elif isinstance(default, dict):
        default = ",".join(f"{k}={v}" for k, v in default.items()) or "none"
    parts = [option.help.rstrip(".")]
    parts.append(f"[{option.section}] {option.key}; env {option.env}; default: {default}")
    return ". ".join(parts).replace("%", "%%")


def build_parser(registry: OptionRegistry) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="pounce: a pure-Python ASGI server built from plugins.",
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Precedence: defaults < pounce.toml < POUNCE_<SECTION>_<KEY> < flags.",
    )
    parser.add_argument("app", nargs="?", metavar="APP", help='the ASGI app as "module:attribute"')
    own = parser.add_argument_group("pounce")
    own.add_argument("--config", metavar="PATH",
                     help="TOML config file (default: ./pounce.toml, else [tool.pounce] in ./pyproject.toml)")
    own.add_argument("--check", action="store_true",
                     help="validate the config, print it and the active plugins with their hooks, then exit")
    own.add_argument("--list-plugins", action="store_true", help="list installed plugins and exit")
    own.add_argument("--version", action="version", version=f"pounce {__version__}")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for option in registry:
        if not option.cli:
            continue
        group = groups.get(option.section)
        if group is None:
            group = groups[option.section] = parser.add_argument_group(f"[{option.section}]")
        kwargs: dict[str, Any] = {"dest": _dest(option), "help": _help(option), "default": argparse.SUPPRESS}
        if option.metavar:
            kwargs["metavar"] = option.metavar
        if option.type == "bool" and option.cli_style == "switch":
            kwargs.pop("metavar", None)
            group.add_argument(*option.cli, action=argparse.BooleanOptionalAction, **kwargs)
        elif option.type in ("list", "table"):
            group.add_argument(*option.cli, action="append", **kwargs)
        else:
            if option.choices and not option.aliases:
                kwargs.setdefault("metavar", "{" + ",".join(str(c) for c in option.choices) + "}")
            group.add_argument(*option.cli, **kwargs)
    return parser


def _preparse(argv: Sequence[str]) -> argparse.Namespace:
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config")
    pre.add_argument("--plugin", action="append", default=[])
    pre.add_argument("--no-plugin", action="append", default=[])
    known, _ = pre.parse_known_args(list(argv))
    return known


def cli_values(args: argparse.Namespace, registry: OptionRegistry) -> dict[tuple[str, str], Any]:
    """Parsed flags as ``{(section, key): value}``; lists flattened and split."""
    values: dict[tuple[str, str], Any] = {}
    for name, value in vars(args).items():
        if not name.startswith("opt:"):
            continue
        _, section, key = name.split(":", 2)
        option = registry.get(section, key)
        if option is None:
            continue
        if option.type == "list":
            items: list[str] = []
            for raw in value:
                items += [p.strip() for p in raw.split(",") if p.strip()] if option.cli_split else [raw]
            value = items
        elif option.type == "table":
            value = list(value)  # KEY=VALUE items; coerce() makes the table
        values[(section, key)] = value
    if getattr(args, "app", None):
        values[("server", "app")] = args.app
    return values


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _main(argv)
    except PounceError as exc:
        if _debug(argv):
            traceback.print_exc()
        print(f"pounce: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _debug(argv: Sequence[str]) -> bool:
    text = " ".join(argv)
    return "--log-level debug" in text or "--log-level=debug" in text or "--log-level trace" in text


def _main(argv: list[str]) -> int:
    pre = _preparse(argv)
    path, pyproject = find_config_file(pre.config)
    toml = read_toml(path, pyproject) if path is not None else {}
    pre_cli = {("plugins", "enable"): _split(pre.plugin), ("plugins", "disable"): _split(pre.no_plugin)}
    enable, disable, autoload = plugin_settings(toml, os.environ, pre_cli, {})
    manager = build_plugin_manager(enable=enable, disable=disable, autoload=autoload)
    parser = build_parser(manager.registry)
    args = parser.parse_args(argv)
    if args.list_plugins:
        print(format_plugin_list(manager))
        return 0
    config = load_config(
        path, cli=cli_values(args, manager.registry), toml_data=toml,
        manager_factory=lambda **_: manager, require_app=True,
    )
    if args.check:
        # Plugins validate in pounce_configure (files exist, formats parse):
        # --check runs it so that what would fail at startup fails here.
        config = config.with_defaults(manager.registry)
        try:
            manager.hook.pounce_configure.call_historic(kwargs={"config": config})
        except PounceError:
            raise
        except Exception as exc:
            raise culprit_error(manager, exc, "pounce_configure") from exc
        try:
            print(format_check(config, manager))
        finally:
            manager.call("pounce_unconfigure", config=config)
        return 0
    from pounce.core.server import Server

    # The app is imported where it is served (Server.app), not here: a
    # process that only supervises workers or watches files never needs it.
    server = Server(config, None, app_path=config.app)
    server.run()
    return server.exit_code


def _split(items: list[str]) -> list[str]:
    return [p.strip() for raw in items for p in raw.split(",") if p.strip()]


def _toml_value(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in value.items()) + " }" \
            if value else "{}"
    return str(value)


def format_check(config: Any, manager: PounceManager) -> str:
    lines = [f"# pounce {__version__}: configuration OK", f"# source: {config.source or 'defaults only'}"]
    current = None
    for (section, key), value in sorted(config.items(), key=lambda kv: _order(config.registry, kv[0])):
        if section != current:
            lines.append(f"\n[{section}]")
            current = section
        if section == "tls" and "password" in key and value:
            value = "********"
        origin = config.origin(section, key)
        lines.append(f"{key} = {_toml_value(value)}" + (f"    # from {origin}" if origin != "default" else ""))
    info = _check_info(config, manager)
    if info:
        lines.append("")
        lines.extend(f"# {line}" for line in info)
    lines.append("\n# active plugins and the hooks they implement")
    for name in ["core"] + manager.active_names():
        info = manager.discovered.get(name)
        version = f" {info.version}" if info else ""
        lines.append(f"#   {name}{version}: {', '.join(manager.hooks_of(name)) or '-'}")
    lines.extend(_warnings(config, manager))
    return "\n".join(lines)


def _check_info(config: Any, manager: PounceManager) -> list[str]:
    """What plugins say the server would do (``pounce_check_info``)."""
    found: list[str] = []
    for result in manager.call("pounce_check_info", config=config) or []:
        found.extend([result] if isinstance(result, str) else list(result or ()))
    return found


def _warnings(config: Any, manager: PounceManager) -> list[str]:
    """Warnings for ``--check`` from ``pounce_check_warnings`` (each plugin
    returns a string, a list of strings or None)."""
    found: list[str] = []
    for result in manager.call("pounce_check_warnings", config=config) or []:
        found.extend([result] if isinstance(result, str) else list(result or ()))
    return [f"# warning: {w}" for w in found]


def _order(registry: OptionRegistry, key: tuple[str, str]) -> tuple[int, int]:
    sections = registry.sections()
    section_index = sections.index(key[0]) if key[0] in sections else len(sections)
    keys = [o.key for o in registry.in_section(key[0])]
    return section_index, keys.index(key[1]) if key[1] in keys else len(keys)


def format_plugin_list(manager: PounceManager) -> str:
    rows = [("name", "version", "distribution", "status", "hooks")]
    for name, info in sorted(manager.discovered.items()):
        active = manager.get_plugin(name) is not None
        if active:
            hooks = manager.hooks_of(name)
        else:
            try:
                obj = info.load()
                hooks = sorted(a for a in dir(obj) if a.startswith("pounce_"))
            except Exception as exc:  # noqa: BLE001 - shown in the table
                hooks = [f"(import failed: {type(exc).__name__})"]
        kind = "built-in" if info.builtin else "third-party"
        status = ("enabled" if active else "disabled") + f" ({kind})"
        rows.append((name, info.version, info.distribution, status, ", ".join(hooks) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    out = []
    for row in rows:
        out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])
    return "\n".join(out)


def run_cli() -> None:
    logging.captureWarnings(True)
    sys.exit(main())
