"""The helpers every part of the suite shares (``from tests.helpers import ...``).

Fixtures live in tests/conftest.py; waiting and log capture that plugin
authors need too are public in :mod:`pounce.testing`.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "tests" / "apps"

T = TypeVar("T")

Address = int | tuple[str, int] | str
"""A port on 127.0.0.1, a (host, port) pair, or the path of a unix socket."""


def copy_of_tree(dest: Path) -> Path:
    """A copy of the work tree at ``dest``, without what is built or cached in
    it (venvs, the Debian root, caches, results): for tests that build from
    the tree (``python -m build``, ``pip install -e``, ``mkdocs``) and so
    write into it. Run on the tree itself, two such tests at once (CI runs
    two Pythons side by side) would write the same ``*.egg-info``."""
    shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".venv-*", ".cache", "site", "results", "build", "dist", "__pycache__", "*.egg-info",
        ".pytest_cache", ".hypothesis", ".ruff_cache", "crashes"))
    return dest


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for subprocesses: test apps importable, no POUNCE_* leaks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POUNCE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(APPS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


def need_command(name: str) -> str:
    """The path of a system command, or skip the test naming what is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (make system-deps installs it)")
    return path


# -- raw sockets --------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on just now, for the few servers that must be
    told their port in advance (nginx, a server whose banner is filtered
    out); everything else binds port 0."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def connect(address: Address, timeout: float = 5.0, *, source: str | None = None) -> socket.socket:
    """A connected client socket; ``source`` binds it to a local address
    first (127.0.0.2 is another peer as far as the server can tell)."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        address = ("127.0.0.1", address) if isinstance(address, int) else address
    sock.settimeout(timeout)
    try:
        if source:
            sock.bind((source, 0))
        sock.connect(address)
    except OSError:
        sock.close()
        raise
    return sock


def read_until(sock: socket.socket, marker: bytes, timeout: float = 5.0) -> bytes:
    """What arrives until ``marker`` is in it, the server closes, or
    ``timeout`` passes (the caller's assertions then say what was missing)."""
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionError):
            break
        if not chunk:
            break
        data += chunk
    return data


def read_until_closed(sock: socket.socket, timeout: float = 5.0, *,
                      idle: float | None = None) -> tuple[bytes, bool]:
    """Everything until the server closes (True), or ``timeout`` passes, or
    nothing has come for ``idle`` seconds (False: the server still holds
    the connection open)."""
    sock.settimeout(0.2 if idle is None else min(0.2, idle))
    data = b""
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if idle is not None and time.monotonic() - last >= idle:
                return data, False
            continue
        except ConnectionError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
        last = time.monotonic()
    return data, False


def send_and_read(address: Address, data: bytes, *, half_close: bool = False, source: str | None = None,
                  timeout: float = 5.0, idle: float | None = None) -> tuple[bytes, bool]:
    """Send ``data`` on a new connection (then FIN, with ``half_close``); what
    comes back and whether the server closed, as :func:`read_until_closed`."""
    with connect(address, timeout, source=source) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before reading it all
        return read_until_closed(sock, timeout, idle=idle)


def exchange(address: Address, data: bytes, *, half_close: bool = False, source: str | None = None,
             timeout: float = 5.0, idle: float | None = None) -> bytes:
    """:func:`send_and_read` for when only the answer matters."""
    return send_and_read(address, data, half_close=half_close, source=source, timeout=timeout, idle=idle)[0]


def fetch(address: Address, path: str = "/", *, host: str = "t",
          timeout: float = 10.0) -> tuple[bytes, bytes]:
    """One ``GET path`` with ``Connection: close`` on a new connection: the
    response head and body as they came (no client library in between)."""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    head, _, body = exchange(address, request, timeout=timeout).partition(b"\r\n\r\n")
    return head, body


def rst_close(sock: socket.socket) -> None:
    """Close with a TCP reset instead of a FIN (a client that vanishes)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# -- the kernel's view of a listening port ---------------------------------------------


def _listening_rows(port: int) -> list[list[str]]:
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # 0A: LISTEN
            rows.append(fields)
    return rows


def listeners(port: int) -> int:
    """LISTEN sockets on ``port`` (one per socket, however many descriptors)."""
    return len(_listening_rows(port))


def accept_queue(port: int) -> int:
    """Connections the kernel has queued on ``port`` that nobody accepted
    yet (for a LISTEN socket, rx_queue in /proc/net/tcp)."""
    return sum(int(fields[4].split(":")[1], 16) for fields in _listening_rows(port))


# -- time -------------------------------------------------------------------------------


def settled(read: Callable[[], T], quiet: float = 0.5, timeout: float = 15.0, interval: float = 0.05) -> T:
    """``read()`` once it has given the same value for ``quiet`` seconds.

    For "it stops" checks (backpressure: the app's sends stall, pounce stops
    taking requests): it keeps polling while the value still moves, where a
    fixed sleep can end too early on a loaded machine.
    """
    deadline = time.monotonic() + timeout
    value = read()
    since = time.monotonic()
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            raise TimeoutError(f"still changing after {timeout:g} s (last {value!r})")
        time.sleep(interval)
        current = read()
        if current != value:
            value, since = current, time.monotonic()
    return value


def holds(predicate: Callable[[], object], seconds: float, what: str = "the condition") -> None:
    """Fail as soon as ``predicate()`` turns false within ``seconds``.

    A check that something does *not* happen (a server that must not exit,
    a certificate that must not change) needs a window by nature; this names
    it as one instead of hiding it in a sleep.
    """
    deadline = time.monotonic() + seconds
    while True:
        assert predicate(), f"{what} stopped holding within {seconds:g} s"
        if time.monotonic() >= deadline:
            return
        time.sleep(0.02)
