"""What users install: ``python -m build`` makes an sdist and a wheel that
build without warnings and, installed in a fresh virtual environment of the
Python running these tests, print ``pounce --version`` and serve the demo,
with every Python warning an error. And ``make run``'s environment holds
only what serving the demo needs.

Slow (builds, venvs, installs), but marked ``packaging`` too: the other
Pythons' fast runs (scripts/test-pythons.sh) include it, so every supported
version installs and runs both distributions."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import venv
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pounce import __version__
from tests.helpers import ROOT, copy_of_tree

pytestmark = [pytest.mark.slow, pytest.mark.packaging]

# pip's own notices about this machine's package index configuration (a
# find-links or extra index that lacks a project) say nothing about pounce.
_PIP_INDEX_NOTICE = re.compile(r"^WARNING: (Location '.*' is ignored|Skipping link)", re.M)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("POUNCE_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


def run(args: list[str], *, cwd: Path | None = None, timeout: float = 300, **env: str) -> str:
    result = subprocess.run(args, cwd=cwd, env=clean_env(**env), capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{output}"
    return output


def warnings_in(output: str) -> list[str]:
    text = _PIP_INDEX_NOTICE.sub("", output)
    return [line for line in text.splitlines() if re.search(r"warn", line, re.I)]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the work tree to build from (building writes into the tree)."""
    return copy_of_tree(tmp_path_factory.mktemp("tree") / "pounce")


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory, tree: Path) -> dict[str, Path]:
    """The sdist and the wheel, built the way a release is (the wheel from the sdist)."""
    out = tmp_path_factory.mktemp("dist")
    output = run([sys.executable, "-m", "build", "--outdir", str(out), str(tree)])
    assert warnings_in(output) == [], output
    sdists = list(out.glob("pounce-*.tar.gz"))
    wheels = list(out.glob("pounce-*-py3-none-any.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, list(out.iterdir())
    return {"sdist": sdists[0], "wheel": wheels[0]}


def test_metadata_says_mit_and_what_is_tested(dists: dict[str, Path]) -> None:
    import zipfile

    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = wheel.namelist()
        metadata = wheel.read(f"pounce-{__version__}.dist-info/METADATA").decode()
    assert f"pounce-{__version__}.dist-info/licenses/LICENSE" in names
    assert "License-Expression: MIT" in metadata
    assert "Requires-Python: >=3.10" in metadata
    tested = {f"3.{minor}" for minor in range(10, 16)}
    assert set(re.findall(r"Classifier: Programming Language :: Python :: (3\.\d+)", metadata)) == tested
    assert f"{sys.version_info[0]}.{sys.version_info[1]}" in tested


def fresh_venv(where: Path) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(where)
    return where / "bin"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def serve_demo(bin_dir: Path, cwd: Path, procs: list[subprocess.Popen[bytes]]) -> tuple[str, Path]:
    """Start the installed ``pounce`` on the root pounce.toml (port 0) with
    every warning an error; returns its URL and its log file."""
    log = cwd / "pounce.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(bin_dir / "pounce"), "--config", str(ROOT / "pounce.toml"), "--port", "0"],
            cwd=cwd, env=clean_env(PYTHONWARNINGS="error", PYTHONUNBUFFERED="1"),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    procs.append(proc)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r"listening on (http://\S+)", log.read_text())
        if match and "plugins:" in log.read_text():
            return match.group(1), log
        assert proc.poll() is None, log.read_text()
        time.sleep(0.05)
    raise AssertionError(f"the installed pounce did not start:\n{log.read_text()}")


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_installs_and_serves_the_demo_without_warnings(
    kind: str, dists: dict[str, Path], tmp_path: Path, served: list[subprocess.Popen[bytes]]
) -> None:
    bin_dir = fresh_venv(tmp_path / "venv")
    output = run([str(bin_dir / "python"), "-m", "pip", "install", str(dists[kind])])
    assert warnings_in(output) == [], output
    version = run([str(bin_dir / "pounce"), "--version"], cwd=tmp_path, PYTHONWARNINGS="error")
    assert version.strip() == f"pounce {__version__}"
    # The installed copy is the one that runs, not this checkout.
    where = run([str(bin_dir / "python"), "-c", "import pounce; print(pounce.__file__)"], cwd=tmp_path)
    assert Path(where.strip()).is_relative_to(tmp_path / "venv")
    url, log = serve_demo(bin_dir, tmp_path, served)
    page = httpx.get(url + "/", timeout=10)
    assert page.status_code == 200 and "pounce is running" in page.text
    assert httpx.get(url + "/healthz", timeout=10).json()["status"] == "ok"
    served[0].terminate()
    assert served[0].wait(20) == 0, log.read_text()
    assert warnings_in(log.read_text()) == [], log.read_text()


def test_make_run_installs_only_what_the_demo_needs(tmp_path: Path, tree: Path,
                                                    served: list[subprocess.Popen[bytes]]) -> None:
    venv_dir = tmp_path / "run-venv"
    run(["make", "-C", str(tree), "run-setup", f"RUN_VENV={venv_dir}", f"PYTHON={sys.executable}"])
    listed = run([str(venv_dir / "bin" / "python"), "-m", "pip", "list", "--format=freeze"])
    installed = {line.split("==")[0].lower() for line in listed.splitlines() if "==" in line}
    # pounce and its runtime dependencies (and theirs), nothing for tests or docs
    for name in ("pytest", "httpx", "hypothesis", "ruff", "mkdocs", "pounce-testplugin", "pounce-prometheus",
                 "pounce-systemd", "pounce-proxy-protocol"):
        assert name not in installed, sorted(installed)
    assert {"pounce", "pluggy", "h11", "wsproto"} <= installed
    url, _ = serve_demo(venv_dir / "bin", tmp_path, served)
    assert "pounce is running" in httpx.get(url + "/", timeout=10).text
