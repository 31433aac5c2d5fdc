"""The unit files and pounce.toml that docs/deployment/systemd.md shows
(deploy/systemd/ in the repository), run as systemd would run them:
``systemd-analyze verify`` checks the units, then the service's ExecStart is
started by Debian's ``systemd-socket-activate`` on the socket unit's
ListenStream (only the paths and the port replaced), with a NOTIFY_SOCKET
bound here, and must report READY=1, serve on the passed socket, and drain on
SIGTERM within the unit's TimeoutStopSec."""

from __future__ import annotations

import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from test_systemd import NotifyListener, free_port, get_retrying, pounce_env, stop

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

UNITS = Path(__file__).resolve().parents[3] / "deploy" / "systemd"
VENV_POUNCE = "/srv/app/.venv/bin/pounce"
CONFIG_PATH = "/srv/app/pounce.toml"


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as section -> key -> values (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in (UNITS / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def config() -> dict:
    return tomllib.loads((UNITS / "pounce.toml").read_text())


def test_units_agree_with_each_other_and_the_config() -> None:
    service = unit("pounce.service")["Service"]
    socket_unit = unit("pounce.socket")
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert socket_unit["Socket"]["ListenStream"] == ["8000"]
    assert "Accept" not in socket_unit["Socket"]  # pounce accepts connections itself
    assert "pounce.socket" in unit("pounce.service")["Unit"]["Requires"]
    argv = shlex.split(service["ExecStart"][0])
    assert argv == [VENV_POUNCE, "--config", CONFIG_PATH]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    drain = config()["server"]["timeout_graceful_shutdown"]
    assert drain + 5 <= int(service["TimeoutStopSec"][0]), "the drain must fit in TimeoutStopSec"
    assert config()["plugins"]["enable"] == ["systemd"]


def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (make system-deps installs systemd)")
    for name in ("pounce.socket", "pounce.service"):
        # ExecStart must name an executable that exists here.
        text = (UNITS / name).read_text().replace(VENV_POUNCE, sys.executable)
        (tmp_path / name).write_text(text)
    result = subprocess.run([tool, "verify", "--man=no", str(tmp_path / "pounce.socket"),
                             str(tmp_path / "pounce.service")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.strip() == "", result.stderr


@pytest.mark.slow
def test_the_service_runs_socket_activated_and_notifies(tmp_path: Path) -> None:
    tool = shutil.which("systemd-socket-activate")
    if tool is None:
        pytest.skip("systemd-socket-activate is not installed (make system-deps installs systemd)")
    service = unit("pounce.service")["Service"]
    shutil.copy(UNITS / "pounce.toml", tmp_path / "pounce.toml")
    argv = shlex.split(service["ExecStart"][0])
    argv = [sys.executable, "-m", "pounce", *(str(tmp_path / "pounce.toml") if a == CONFIG_PATH else a
                                              for a in argv[1:])]
    port = free_port()
    listen = unit("pounce.socket")["Socket"]["ListenStream"][0].replace("8000", f"127.0.0.1:{port}")
    listener = NotifyListener(str(tmp_path / "notify.sock"))
    log_path = tmp_path / "service.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [tool, "-l", listen, "-E", f"NOTIFY_SOCKET={listener.address}", "-E", "PYTHONUNBUFFERED=1",
             *argv],
            cwd=tmp_path, env=pounce_env(), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    try:
        response = get_retrying(f"http://127.0.0.1:{port}/")  # the first connection starts the service
        assert response.status_code == 200
        _, sender, text = listener.wait_for("READY=1")
        assert sender == proc.pid  # the main process, as NotifyAccess=main wants
        workers = config()["server"]["workers"]
        assert f"({workers}/{workers} workers accepting)" in text
        with httpx.Client(timeout=10) as client:
            assert all(client.get(f"http://127.0.0.1:{port}/").status_code == 200 for _ in range(5))
        output = log_path.read_text()
        assert "systemd: serving 1 socket(s) passed by socket activation" in output
        proc.send_signal(signal.SIGTERM)  # KillSignal=SIGTERM
        listener.wait_for("STOPPING=1")
        started = time.monotonic()
        proc.wait(int(service["TimeoutStopSec"][0]))
        assert time.monotonic() - started < int(service["TimeoutStopSec"][0])
        assert proc.returncode == 0, log_path.read_text()
        assert listener.texts()[-1] == "STATUS=stopped"
    finally:
        stop(proc)
        listener.close()
