"""The plugin author's guide works as written.

The example plugin in docs/plugins.md is copied file by file (every fenced
block with ``file=PATH`` in its info string) into a new folder, installed
with pip into a private target directory (so the shared environment is left
alone), and then used exactly as the guide says: its own tests run with
pytest, and the guide's pounce.toml runs with the ``pounce`` command.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pounce.core import hookspecs
from pounce.testing import ServerProcess, run_pounce
from tests.helpers import ROOT

GUIDE = ROOT / "docs" / "plugins.md"
BLOCK = re.compile(r"^```(\w+) file=(\S+)\n(.*?)^```$", re.M | re.S)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def guide_files() -> dict[str, str]:
    return {path: body for _, path, body in BLOCK.findall(GUIDE.read_text())}


def install(project: Path, target: Path) -> None:
    """``pip install --target``; without a package index (pip needs
    setuptools for the build), lay out the same files pip would: the package
    and a dist-info with the entry points from pyproject.toml."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(project)],
        capture_output=True, text=True, timeout=180,
    )
    if result.returncode == 0:
        return
    meta = tomllib.loads((project / "pyproject.toml").read_text())
    name, version = meta["project"]["name"], meta["project"]["version"]
    for package in meta["tool"]["setuptools"]["packages"]:
        shutil.copytree(project / package, target / package)
    info = target / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, entries in meta["project"]["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{key} = {value}" for key, value in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("guide")
    files = guide_files()
    for path, body in files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
    site = folder / "site"
    install(folder / "pounce-served-by", site)
    env = {k: v for k, v in os.environ.items() if not k.startswith("POUNCE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    return folder, env


def test_the_guide_has_a_complete_plugin() -> None:
    files = guide_files()
    assert {
        "pounce-served-by/pyproject.toml",
        "pounce-served-by/pounce_served_by/__init__.py",
        "pounce-served-by/tests/test_served_by.py",
        "pounce.toml",
    } <= set(files)


def test_the_guide_documents_every_hook() -> None:
    text = GUIDE.read_text()
    hooks = [n for n, _ in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("pounce_")]
    for hook in hooks:
        assert f"`{hook}(" in text, f"{hook} is missing from the lifecycle table of docs/plugins.md"


def test_connection_hook_costs_nothing_when_unused() -> None:
    """The guide's promise: with no pounce_wrap_protocol answer, the worker
    hands asyncio the core's own factory object, untouched."""
    from pounce import hookimpl
    from pounce.core.plugins import build_plugin_manager

    manager = build_plugin_manager()
    config = object()

    def core_factory() -> None:
        return None

    assert manager.wrap_protocol(config, core_factory) is core_factory

    class Wrapper:
        @hookimpl
        def pounce_wrap_protocol(self, factory: object) -> object:
            return lambda: ("wrapped", factory)

    manager.register(Wrapper(), "wrapper")
    wrapped = manager.wrap_protocol(config, core_factory)
    assert wrapped is not core_factory and wrapped() == ("wrapped", core_factory)


@pytest.mark.slow
def test_the_example_plugins_own_tests_pass(installed: tuple[Path, dict[str, str]]) -> None:
    folder, env = installed
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "pounce-served-by/tests"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=110,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "5 passed" in result.stdout


@pytest.mark.slow
def test_the_example_is_listed_and_runs_from_the_guides_pounce_toml(installed: tuple[Path, dict[str, str]]) -> None:
    folder, env = installed
    for cwd, status in ((folder / "site", "disabled"), (folder, "enabled")):  # folder has pounce.toml
        listing = run_pounce(["--list-plugins"], cwd=cwd, env=env)
        line = next(ln for ln in listing.stdout.splitlines() if ln.startswith("served_by "))
        assert "0.1.0" in line and "pounce-served-by" in line and f"{status} (third-party)" in line
        assert "pounce_request_observer" in line and "pounce_wrap_app" in line
    # The guide's pounce.toml, on port 0 instead of 8000.
    config = (folder / "pounce.toml").read_text().replace("port = 8000", "port = 0")
    (folder / "pounce.toml").write_text(config)
    with ServerProcess(["--config", "pounce.toml"], cwd=folder, env=env) as proc:
        assert "served-by: edge-1" in proc.output()
        response = httpx.get(proc.url, timeout=10)  # type: ignore[arg-type]
        assert response.status_code == 200
        assert response.headers["x-served-by"] == "edge-1"
        assert proc.stop() == 0
        assert "served-by: responses by status: 200: 1" in proc.output()
