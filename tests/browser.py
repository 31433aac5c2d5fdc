"""Headless Chromium for tests: start one with remote debugging
(:func:`launch_chromium`, the ``chromium`` fixture in ``tests/conftest.py``)
and drive it through the DevTools protocol (:class:`DevTools`), spoken with
the websockets client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from pounce.testing import wait_for
from tests.helpers import need_command

# Flags every test Chromium gets: no sandbox (root), no GPU, and nothing
# that reaches for the network on its own (this machine's network is closed).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", "--no-default-browser-check", "--disable-dev-shm-usage",
         "--disable-component-update", "--disable-sync")


@contextlib.contextmanager
def launch_chromium(profile: Path, extra: Sequence[str] = ()) -> Iterator[int]:
    """A headless Chromium with remote debugging; yields its DevTools port
    and stops the browser (its whole process group) afterwards."""
    binary = need_command("chromium")
    profile.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [binary, *FLAGS, *extra, f"--user-data-dir={profile}", "--remote-debugging-port=0",
         "--remote-allow-origins=*", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    port_file = profile / "DevToolsActivePort"

    def devtools_port() -> int:
        if proc.poll() is not None:
            pytest.fail(f"chromium exited with {proc.returncode}")
        text = port_file.read_text() if port_file.exists() else ""
        return int(text.split()[0]) if text.strip() else 0

    try:
        yield wait_for(devtools_port, 30, interval=0.1, what="chromium to open its DevTools port")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


class DevTools:
    """Just enough of the DevTools protocol: numbered commands, replies by id."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        my_id = self.next_id
        await self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await self.ws.recv())
            if reply.get("id") == my_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.1)
        raise TimeoutError(f"page never satisfied {expression}")
