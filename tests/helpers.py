"""The helpers every part of the suite shares (``from tests.helpers import ...``).

Fixtures live in tests/conftest.py; waiting and log capture that plugin
authors need too are public in :mod:`pounce.testing`.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "tests" / "apps"


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


def read_until_closed(sock: socket.socket, timeout: float = 5.0) -> tuple[bytes, bool]:
    """Everything until the server closes (True) or ``timeout`` passes (False)."""
    sock.settimeout(0.2)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False
