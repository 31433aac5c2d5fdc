"""Docs that are generated or promised stay true."""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pounce.core import hookspecs, reference
from tests.helpers import ROOT


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
    assert '      - "[example]": configuration/example.md\n' in nav and "configuration/server.md" not in nav
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


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def test_published_benchmark_blocks_are_current() -> None:
    """The README's table and the performance page are what the kept run
    (docs/assets/bench/run.json) renders: nobody edits a figure by hand."""
    publish = _load(ROOT / "benchmarks" / "publish.py")
    assert publish.stale() == [], "run `python benchmarks/publish.py` (make docs)"
    assert (ROOT / "docs" / "assets" / "bench" / "chart.png").read_bytes().startswith(b"\x89PNG")


def test_migration_tables_are_current() -> None:
    migration = _load(ROOT / "scripts" / "docs_migration.py")
    assert migration.stale() == [], "run `make docs`"


def _prose(path: Path) -> str:
    text = path.read_text()
    return re.sub(r"<!-- bench:start -->.*?<!-- bench:end -->", "", text, flags=re.S)


def test_benchmark_figures_appear_only_on_the_performance_page() -> None:
    """No page but the performance page (and the README's rendered table)
    quotes a throughput ratio against uvicorn or a published median."""
    run = json.loads((ROOT / "docs" / "assets" / "bench" / "run.json").read_text())
    publish = _load(ROOT / "benchmarks" / "publish.py")
    medians = {publish.fmt(v) for scenario in run["medians"]["pounce"].values()
               for k, v in scenario.items() if k in ("rps", "msgs") and v >= 1000}
    pages = [p for p in (ROOT / "docs").rglob("*.md") if p.name != "performance.md"]
    pages += [ROOT / "README.md", ROOT / "benchmarks" / "README.md"]
    ratio = re.compile(r"\d+(?:\.\d+)?\s*[x×]\s+(?:uvicorn|faster|the)", re.I)
    for page in pages:
        text = _prose(page)
        assert not ratio.search(text), f"{page.relative_to(ROOT)}: {ratio.search(text).group(0)!r}"
        for figure in medians:
            assert figure not in text, f"{page.relative_to(ROOT)} quotes {figure}"


def test_readme_is_short_and_links_resolve() -> None:
    readme = ROOT / "README.md"
    assert len(readme.read_text().splitlines()) <= 150
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme.read_text())
    local = [link for link in links if "://" not in link]
    assert local
    for link in local:
        assert (ROOT / link).exists(), f"README links to {link}, which does not exist"


def test_readme_reaches_the_deployment_and_migration_pages_in_one_click() -> None:
    readme = (ROOT / "README.md").read_text()
    for page in ("docs/deployment/nginx.md", "docs/deployment/kubernetes.md", "docs/migrating/uvicorn.md"):
        assert f"]({page})" in readme, page


def test_plugin_pages_name_the_hooks_each_plugin_implements() -> None:
    from pounce.core.plugins import build_plugin_manager

    manager = build_plugin_manager()
    for name in ("logging", "tls", "supervisor", "reload", "static", "compression", "health",
                 "request_id", "rate_limit"):
        page = (ROOT / "docs" / "plugins" / f"{name.replace('_', '-')}.md").read_text()
        section = page.split("## The plugin", 1)[1]
        documented = set(re.findall(r"`(pounce_\w+)`", section))
        plugin = manager.get_plugin(name)
        assert plugin is not None, name
        implemented = {caller.name for caller in manager.get_hookcallers(plugin) or []}
        assert documented == implemented, (name, documented ^ implemented)


@pytest.mark.parametrize("toml", ["[server]\nport = 70000\n", "[servr]\nport = 1\n"])
def test_configuration_page_quotes_real_errors(toml: str, tmp_path: Path) -> None:
    (tmp_path / "pounce.toml").write_text(toml)
    result = subprocess.run([sys.executable, "-m", "pounce", "--check"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line in (ROOT / "docs" / "configuration" / "index.md").read_text()


def test_published_tables_are_computed_from_the_run() -> None:
    """The rendered ratios and flags follow the run's medians: change a
    median and the table changes with it."""
    publish = _load(ROOT / "benchmarks" / "publish.py")
    run = publish.load_run()
    ours = run["medians"]["pounce"]["hello64"]["rps"]
    theirs = run["medians"]["uvicorn-h11"]["hello64"]["rps"]
    assert f"| {publish.fmt(ours)} | {ours / theirs:.2f}x |" in publish.short_table(run)
    run["medians"]["pounce"]["hello64"]["rps"] = theirs * 2
    run["medians"]["pounce"]["hello64"]["errors"] = 3
    table = publish.full_table(run)
    assert f"{publish.fmt(theirs * 2)} ⚠" in table and "| 2.00x |" in publish.short_table(run)
    assert publish.command(run).startswith("bash benchmarks/run.sh --rounds ")
