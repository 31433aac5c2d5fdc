"""Generate the configuration reference (``docs/configuration/``) from the
option registry: one page per section, the table of sections on the
configuration overview, and the matching lines of the site's navigation.

``python -m pounce.core.reference`` rewrites them (``make docs`` does it
too); ``--check`` only reports what is stale, and a test runs the same check.
Nothing here is written by hand: a section a plugin declares gets its page,
its row and its nav line the next time the docs are generated.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pounce.core.options import Option, OptionRegistry
from pounce.core.plugins import build_plugin_manager

ROOT = Path(__file__).resolve().parents[2]
PAGES = "configuration"
INDEX_MARKERS = ("<!-- sections:start -->", "<!-- sections:end -->")
NAV_MARKERS = ("# config-sections:start", "# config-sections:end")

GENERATED = (
    "<!-- Generated from the option registry by `make docs` "
    "(python -m pounce.core.reference); do not edit by hand. -->\n"
)


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


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def _flags(option: Option) -> str:
    if not option.cli:
        return "—"
    if option.type == "bool" and option.cli_style == "switch":
        return ", ".join(f"`{f}` / `--no-{f[2:]}`" for f in option.cli)
    suffix = " (repeatable)" if option.type in ("list", "table") else ""
    return ", ".join(f"`{f} {option.metavar or 'VALUE'}`" for f in option.cli) + suffix


def _cell(text: str) -> str:
    return text.replace("|", "/")


@dataclass(frozen=True)
class Section:
    name: str
    owner: str
    options: tuple[Option, ...]

    @property
    def page(self) -> str:
        """The page's path below docs/."""
        return f"{PAGES}/{self.name}.md"


def sections(registry: OptionRegistry | None = None) -> list[Section]:
    """Every section in registry order (the core's first, then each plugin's)."""
    if registry is None:
        registry = build_plugin_manager().registry
    out = []
    for name in registry.sections():
        options = tuple(registry.in_section(name))
        out.append(Section(name, options[0].plugin, options))
    return out


def render_section(section: Section) -> str:
    """One section's page: a summary table, the section with its defaults as
    TOML, then every option under its own heading (so it can be linked as
    ``configuration/SECTION.md#KEY``)."""
    owner = "the core" if section.owner == "core" else f"the `{section.owner}` plugin"
    out = [
        GENERATED,
        f"# [{section.name}]\n",
        f"Options of the `[{section.name}]` section, declared by {owner}. How files, environment "
        "variables and flags combine is on the [configuration overview](index.md).\n",
        "| key | default | flag |",
        "|---|---|---|",
    ]
    for option in section.options:
        out.append(f"| [`{option.key}`](#{option.key}) | {_value(option.default)} | {_flags(option)} |")
    out += ["", "With every default written out:", "", "```toml", f"[{section.name}]"]
    for option in section.options:
        if option.default is None:
            out.append(f"# {option.key} =   (unset)")
        else:
            out.append(f"{option.key} = {_toml(option.default)}")
    out += ["```", ""]
    for option in section.options:
        out += [
            f"## `{option.key}`\n",
            _cell(option.help) + "\n",
            f"- Value: {option.describe()}",
            f"- Default: {_value(option.default)}",
            f"- Flag: {_flags(option)}",
            f"- Environment: `{option.env}`",
            f"- Python: `{option.override_name}=` (`pounce.run`, `ServerConfig.load`)",
            "",
        ]
    return "\n".join(out).rstrip("\n") + "\n"


def render_index_table(all_sections: list[Section]) -> str:
    lines = ["| section | declared by | options |", "|---|---|---|"]
    for section in all_sections:
        keys = ", ".join(f"`{o.key}`" for o in section.options)
        lines.append(f"| [`[{section.name}]`]({section.name}.md) | `{section.owner}` | {keys} |")
    return "\n".join(lines)


def render_nav(all_sections: list[Section], indent: str) -> str:
    return "\n".join(f'{indent}- "[{s.name}]": {s.page}' for s in all_sections)


def _between(text: str, markers: tuple[str, str], body: Any, where: str) -> str:
    """``text`` with the lines between the two marker lines replaced by
    ``body(indent)``, where indent is the start marker's own indentation."""
    start, end = markers
    pattern = re.compile(
        rf"^(?P<indent>[ \t]*)(?P<start>{re.escape(start)}[^\n]*)\n.*?^[ \t]*{re.escape(end)}[^\n]*$",
        re.S | re.M)
    match = pattern.search(text)
    if match is None:
        raise ValueError(f"{where}: the marker lines {start!r} ... {end!r} are missing")
    indent = match.group("indent")
    block = f"{indent}{match.group('start')}\n{body(indent)}\n{indent}{end}"
    return text[:match.start()] + block + text[match.end():]


def expected_files(root: Path = ROOT, registry: OptionRegistry | None = None) -> dict[Path, str]:
    """What every generated file should contain: the section pages, the
    overview with its table of sections, and mkdocs.yml with its nav lines."""
    all_sections = sections(registry)
    files: dict[Path, str] = {root / "docs" / s.page: render_section(s) for s in all_sections}
    index = root / "docs" / PAGES / "index.md"
    files[index] = _between(index.read_text(), INDEX_MARKERS, lambda _: render_index_table(all_sections),
                            str(index))
    mkdocs = root / "mkdocs.yml"
    files[mkdocs] = _between(mkdocs.read_text(), NAV_MARKERS, lambda indent: render_nav(all_sections, indent),
                             str(mkdocs))
    return files


def stale_files(root: Path = ROOT, registry: OptionRegistry | None = None) -> list[str]:
    """Generated files that differ from what the registry says, and section
    pages that no section declares any more."""
    expected = expected_files(root, registry)
    stale = [str(p.relative_to(root)) for p, text in expected.items()
             if not p.exists() or p.read_text() != text]
    for page in sorted((root / "docs" / PAGES).glob("*.md")):
        if page.name != "index.md" and page not in expected:
            stale.append(f"{page.relative_to(root)} (no such section)")
    return stale


def write(root: Path = ROOT, registry: OptionRegistry | None = None) -> list[str]:
    """Rewrite the generated files; returns the ones that changed."""
    changed = []
    expected = expected_files(root, registry)
    for path, text in expected.items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(str(path.relative_to(root)))
    for page in sorted((root / "docs" / PAGES).glob("*.md")):
        if page.name != "index.md" and page not in expected:
            page.unlink()
            changed.append(f"{page.relative_to(root)} (removed)")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="report stale files and exit 1, change nothing")
    args: Any = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for name in stale:
            print(f"stale: {name}", file=sys.stderr)
        return 1 if stale else 0
    for name in write():
        print(f"wrote {name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
