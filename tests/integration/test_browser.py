"""A real browser against a real pounce: headless Chromium loads the demo's
/ws page, opens the WebSocket, sends a message through the page's own form
and shows the echo. The test drives and reads the page through the DevTools
protocol, spoken with the websockets client."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from pounce.demo import app as demo_app
from pounce.testing import wait_for
from tests.helpers import need_command

MESSAGE = "héllo from chromium ✓"
seen: list[dict[str, Any]] = []


async def recording_demo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The demo app, with every WebSocket message it receives recorded, so the
    test can tell the echo really went through pounce."""
    if scope["type"] != "websocket":
        await demo_app(scope, receive, send)
        return

    async def spy() -> dict[str, Any]:
        message = await receive()
        seen.append(message)
        return message

    await demo_app(scope, spy, send)


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[int]:
    """A headless Chromium with remote debugging; yields its DevTools port."""
    binary = need_command("chromium")
    profile = tmp_path / "profile"
    profile.mkdir()
    proc = subprocess.Popen(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", "--no-default-browser-check", "--disable-dev-shm-usage",
         f"--user-data-dir={profile}", "--remote-debugging-port=0", "--remote-allow-origins=*",
         "about:blank"],
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
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
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


@pytest.mark.slow
def test_chromium_echoes_through_the_demo_page(serve: Any, chromium: int, tmp_path: Path) -> None:
    seen.clear()
    srv = serve(recording_demo)
    page_url = srv.url + "/ws"

    with httpx.Client(trust_env=False, timeout=10) as http:
        targets = http.get(f"http://127.0.0.1:{chromium}/json/list").json()
    page = next(t for t in targets if t.get("type") == "page")

    async def drive() -> tuple[str, str, bytes]:
        async with connect(page["webSocketDebuggerUrl"], proxy=None, max_size=None) as ws:
            tools = DevTools(ws)
            await tools.call("Page.enable")
            await tools.call("Page.navigate", url=page_url)
            await tools.wait_for("document.readyState === 'complete' && !!document.getElementById('status')")
            status = await tools.wait_for(
                "(s => s === 'open' ? s : '')(document.getElementById('status').textContent)")
            # Type into the page's own form and submit it, as a user would.
            await tools.evaluate(
                f"document.getElementById('msg').value = {json.dumps(MESSAGE)};"
                "document.querySelector('#form button').click(); true")
            echoed = await tools.wait_for(
                "Array.from(document.querySelectorAll('#log .echo')).map(e => e.textContent).join('|')")
            shot = await tools.call("Page.captureScreenshot", format="png")
            import base64

            return status, echoed, base64.b64decode(shot["data"])

    status, echoed, png = asyncio.run(asyncio.wait_for(drive(), 60))
    assert status == "open"
    assert echoed == MESSAGE
    assert png.startswith(b"\x89PNG") and len(png) > 1000
    (tmp_path / "ws-page.png").write_bytes(png)
    # pounce really carried it: the app saw the browser's text message
    assert {"type": "websocket.receive", "text": MESSAGE} in seen
