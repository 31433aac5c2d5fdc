"""Docs that are generated or promised stay true."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from pounce.core import hookspecs, reference

ROOT = Path(__file__).resolve().parent.parent


def hook_names() -> list[str]:
    return [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("pounce_")]


def test_config_reference_is_current() -> None:
    """docs/configuration/ (one page per section), its table of sections and
    the nav lines in mkdocs.yml are what the option registry says."""
    stale = reference.stale_files(ROOT)
    assert not stale, f"generated configuration pages are stale ({', '.join(stale)}): run `make docs`"
    assert not (ROOT / "docs" / "config.md").exists(), (
        "the configuration reference is docs/configuration/ now (make docs writes it)")


def test_config_reference_follows_a_new_section(tmp_path: Path) -> None:
    """A plugin's new section gets a page, a row and a nav line; a section
    that is gone loses its page."""
    from pounce.core.options import OptionRegistry

    (tmp_path / "docs" / "configuration").mkdir(parents=True)
    index = (ROOT / "docs" / "configuration" / "index.md").read_text()
    (tmp_path / "docs" / "configuration" / "index.md").write_text(index)
    (tmp_path / "docs" / "configuration" / "gone.md").write_text("# old\n")
    (tmp_path / "mkdocs.yml").write_text((ROOT / "mkdocs.yml").read_text())
    registry = OptionRegistry()
    registry._current_plugin = "example"
    registry.add("example", "rate", "float", 1.5, "Requests per second.", cli="--example-rate")
    files = reference.expected_files(tmp_path, registry)
    page = files[tmp_path / "docs" / "configuration" / "example.md"]
    assert "# [example]" in page and "## `rate`" in page and "`POUNCE_EXAMPLE_RATE`" in page
    assert "[`[example]`](example.md)" in files[tmp_path / "docs" / "configuration" / "index.md"]
    nav = files[tmp_path / "mkdocs.yml"]
    assert "      - configuration/example.md\n" in nav and "configuration/server.md" not in nav
    assert "docs/configuration/gone.md (no such section)" in reference.stale_files(tmp_path, registry)
    reference.write(tmp_path, registry)
    assert not (tmp_path / "docs" / "configuration" / "gone.md").exists()
    assert reference.stale_files(tmp_path, registry) == []


def test_every_hook_is_in_the_contract_and_has_a_docstring() -> None:
    design = (ROOT / "docs" / "design.md").read_text()
    for name in hook_names():
        assert f"`{name}(" in design, f"{name} missing from docs/design.md"
        assert (getattr(hookspecs, name).__doc__ or "").strip(), f"{name} has no docstring"


def test_every_contract_hook_is_declared() -> None:
    design = (ROOT / "docs" / "design.md").read_text()
    declared = set(hook_names())
    for name in re.findall(r"`(pounce_\w+)\(", design):
        assert name in declared, f"{name} is in docs/design.md but not in hookspecs.py"


def test_readme_opens_with_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["make run", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
