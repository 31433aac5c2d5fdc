"""Generate ``docs/config.md`` from the option registry.

``python -m pounce.core.reference > docs/config.md`` regenerates it; a test
fails when the checked-in file differs from what this prints.
"""

from __future__ import annotations

from pounce.core.options import Option
from pounce.core.plugins import build_plugin_manager

HEADER = """# Configuration reference

Generated from the option registry by `make docs`
(`python -m pounce.core.reference`); do not edit by hand.

Every option can be set in `pounce.toml` (or `[tool.pounce]` in
`pyproject.toml`), in the environment as `POUNCE_<SECTION>_<KEY>`, and most
on the command line. Precedence: defaults < file < environment < flags.
Lists are comma-separated in the environment and on the command line.
Programmatic overrides (`pounce.run(app, **overrides)`, `ServerConfig.load`)
use the `[server]` key name, or `<section>_<key>` for other sections.
"""


def _value(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, tuple):
        return "`[" + ", ".join(f'"{v}"' for v in value) + "]`"
    if isinstance(value, dict):
        return "`{" + ", ".join(f'"{k}" = "{v}"' for k, v in value.items()) + "}`"
    return f"`{value}`"


def _flags(option: Option) -> str:
    if not option.cli:
        return "—"
    if option.type == "bool" and option.cli_style == "switch":
        return ", ".join(f"`{f}` / `--no-{f[2:]}`" for f in option.cli)
    suffix = " (repeatable)" if option.type in ("list", "table") else ""
    return ", ".join(f"`{f} {option.metavar or 'VALUE'}`" for f in option.cli) + suffix


def render() -> str:
    manager = build_plugin_manager()
    registry = manager.registry
    out = [HEADER]
    for section in registry.sections():
        options = registry.in_section(section)
        owner = options[0].plugin
        out.append(f"\n## [{section}]\n")
        out.append(f"Declared by: `{owner}`.\n")
        out.append("| key | type | default | flag | environment | description |")
        out.append("|---|---|---|---|---|---|")
        for option in options:
            out.append(
                f"| `{option.key}` | {option.describe().replace('|', '/')} | {_value(option.default)} "
                f"| {_flags(option)} | `{option.env}` | {option.help.replace('|', '/')} |"
            )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(render(), end="")
