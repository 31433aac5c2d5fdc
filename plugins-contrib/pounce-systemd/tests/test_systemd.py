"""pounce-systemd against real peers: a NOTIFY_SOCKET datagram socket bound
here (with SO_PASSCRED, so the sender's pid is known as systemd knows it) and
Debian's ``systemd-socket-activate`` passing a real listening socket."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pounce_systemd.sd import Notifier, take_listen_fds

from pounce.testing import ServerProcess, run_pounce


class NotifyListener:
    """A NOTIFY_SOCKET like systemd's: datagrams plus the sender's pid."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except TimeoutError:
                continue
            except OSError:
                return
            pid = -1
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", payload[:12])[0]
            self.messages.append((time.monotonic(), pid, data.decode()))

    def wait_for(self, line: str, timeout: float = 15.0) -> tuple[float, int, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in list(self.messages):
                if line in message[2].split("\n"):
                    return message
            time.sleep(0.02)
        raise AssertionError(f"no {line!r} within {timeout}s; got {self.texts()}")

    def texts(self) -> list[str]:
        return [m[2] for m in self.messages]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    lis = NotifyListener(str(tmp_path / "notify.sock"))
    yield lis
    lis.close()


def pounce_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POUNCE_", "LISTEN_", "NOTIFY_", "WATCHDOG_"))}
    env.update(extra)
    return env


@pytest.mark.slow
def test_ready_watchdog_status_and_stopping_single_worker(tmp_path: Path, listener: NotifyListener) -> None:
    env = pounce_env(NOTIFY_SOCKET=listener.address, WATCHDOG_USEC="200000")
    proc = ServerProcess(["pounce.demo:app", "--port", "0", "--plugin", "systemd"], cwd=tmp_path, env=env)
    with proc:
        main_pid = proc.proc.pid  # type: ignore[union-attr]
        ready_at, sender, text = listener.wait_for("READY=1")
        assert sender == main_pid
        assert any(line.startswith("STATUS=serving on 127.0.0.1:") for line in text.split("\n"))
        assert httpx.get(proc.url, timeout=10).status_code == 200  # type: ignore[arg-type]
        time.sleep(1.0)
        pings = [m for m in listener.messages if m[2] == "WATCHDOG=1"]
        assert len(pings) >= 4, listener.texts()  # every 0.1s asked for 0.2s
        assert all(pid == main_pid for _, pid, _ in pings)
        assert "systemd: notifying" in proc.output() and "watchdog every 0.1s" in proc.output()
        proc.signal(signal.SIGTERM)
        stopping_at, sender, text = listener.wait_for("STOPPING=1")
        assert sender == main_pid and "STATUS=shutting down (signal)" in text
        assert proc.wait(20) == 0
    texts = listener.texts()
    assert texts[0] == "STATUS=starting"
    assert texts[-1] == "STATUS=stopped"
    assert stopping_at > ready_at


@pytest.mark.slow
def test_ready_only_when_both_worker_processes_accept(tmp_path: Path, listener: NotifyListener) -> None:
    # WATCHDOG_PID names another process: the watchdog is not ours to feed.
    env = pounce_env(NOTIFY_SOCKET=listener.address, WATCHDOG_USEC="100000", WATCHDOG_PID="1")
    args = ["pounce.demo:app", "--port", "0", "--plugin", "systemd", "--workers", "2", "--worker-mode", "process"]
    with ServerProcess(args, cwd=tmp_path, env=env) as proc:
        main_pid = proc.proc.pid  # type: ignore[union-attr]
        _, sender, text = listener.wait_for("READY=1")
        assert sender == main_pid, "only the main process notifies (NotifyAccess=main)"
        assert "(2/2 workers accepting)" in text
        assert f"MAINPID={main_pid}" in text
        assert httpx.get(proc.url, timeout=10).status_code == 200  # type: ignore[arg-type]
        time.sleep(0.3)
        assert "WATCHDOG=1" not in listener.texts()
        assert all(pid == main_pid for _, pid, _ in listener.messages)
    listener.wait_for("STOPPING=1")
    assert any("exited" in t for t in listener.texts())


@pytest.mark.slow
def test_thread_workers_report_in_order(tmp_path: Path, listener: NotifyListener) -> None:
    env = pounce_env(NOTIFY_SOCKET=listener.address)
    args = ["pounce.demo:app", "--port", "0", "--plugin", "systemd", "--workers", "3", "--worker-mode", "thread"]
    with ServerProcess(args, cwd=tmp_path, env=env) as proc:
        _, sender, text = listener.wait_for("READY=1")
        assert sender == proc.proc.pid  # type: ignore[union-attr]
        assert "(3/3 workers accepting)" in text
        time.sleep(0.2)
    serving = [t for t in listener.texts() if "workers accepting)" in t and "STATUS=serving" in t]
    assert [s.split("(")[1][:3] for s in serving] == ["1/3", "2/3", "3/3"], serving
    assert "READY=1" in serving[-1]


@pytest.mark.slow
def test_abstract_notify_socket(tmp_path: Path) -> None:
    lis = NotifyListener(f"@pounce-test-{uuid.uuid4().hex}")
    try:
        env = pounce_env(NOTIFY_SOCKET=lis.address)
        with ServerProcess(["pounce.demo:app", "--port", "0", "--plugin", "systemd"], cwd=tmp_path, env=env):
            lis.wait_for("READY=1")
    finally:
        lis.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def activate(tmp_path: Path, address: str, *pounce_args: str) -> subprocess.Popen[bytes]:
    tool = shutil.which("systemd-socket-activate")
    if tool is None:
        pytest.skip("systemd-socket-activate is not installed (make system-deps installs systemd)")
    log = open(tmp_path / "activate.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [tool, "-l", address, sys.executable, "-m", "pounce", *pounce_args],
        cwd=tmp_path, env=pounce_env(), stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes]) -> int | None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return proc.returncode


def get_retrying(url: str, transport: httpx.HTTPTransport | None = None) -> httpx.Response:
    """systemd-socket-activate listens at once and execs pounce on the first
    connection; that connection waits in the backlog until pounce accepts."""
    deadline = time.monotonic() + 15
    while True:
        try:
            with httpx.Client(transport=transport, timeout=15) as client:
                return client.get(url)
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_socket_activation_tcp_with_systemd_socket_activate(tmp_path: Path) -> None:
    port = free_port()
    # "--port 1" is ignored: only the passed socket (fd 3) listens on ``port``.
    proc = activate(tmp_path, f"127.0.0.1:{port}", "pounce.demo:app", "--port", "1", "--plugin", "systemd")
    try:
        response = get_retrying(f"http://127.0.0.1:{port}/")
        assert response.status_code == 200
        assert "pounce" in response.text.lower()
        log = (tmp_path / "activate.log").read_text()
        assert "systemd: serving 1 socket(s) passed by socket activation" in log
        assert f"listening on http://127.0.0.1:{port}" in log
    finally:
        assert stop(proc) == 0
    assert "LISTEN_FDS" not in (tmp_path / "activate.log").read_text()


def test_socket_activation_unix_socket_two_workers(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    proc = activate(tmp_path, str(path), "pounce.demo:app", "--plugin", "systemd", "--workers", "2",
                    "--worker-mode", "process")
    try:
        transport = httpx.HTTPTransport(uds=str(path))
        assert get_retrying("http://localhost/", transport).status_code == 200
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=10) as client:
            assert all(client.get("http://localhost/").status_code == 200 for _ in range(5))
        assert "serving 1 socket(s) passed by socket activation" in (tmp_path / "activate.log").read_text()
    finally:
        assert stop(proc) == 0


def test_environment_is_read_once_and_removed() -> None:
    env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b"}
    assert take_listen_fds(env) == [3, 4]
    assert env == {}
    env = {"LISTEN_PID": "1", "LISTEN_FDS": "2"}
    assert take_listen_fds(env) == []  # meant for another process
    notify_env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "3000000"}
    notifier = Notifier.from_environ(notify_env)
    assert notifier.address == "/run/x" and notifier.watchdog_interval == 1.5 and notify_env == {}


def test_listed_without_being_enabled(tmp_path: Path) -> None:
    listing = run_pounce(["--list-plugins"], cwd=tmp_path, env=pounce_env())
    line = next(ln for ln in listing.stdout.splitlines() if ln.startswith("systemd "))
    assert "pounce-systemd" in line and "disabled" in line and "pounce_bind" in line
