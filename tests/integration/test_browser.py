"""A real browser against a real pounce: headless Chromium loads the demo's
/ws page, opens the WebSocket, sends a message through the page's own form
and shows the echo. The test drives and reads the page through the DevTools
protocol, spoken with the websockets client."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from pounce.demo import app as demo_app
from tests.browser import DevTools

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
