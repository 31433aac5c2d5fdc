"""Headless Chromium over HTTPS: the demo page comes over HTTP/2 (ALPN h2),
its server-sent events stream in, and its WebSocket echoes over the same
connection (RFC 8441); the page itself reports ``nextHopProtocol``."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from websockets.asyncio.client import connect

from pounce.demo import app as demo_app
from tests.browser import DevTools, launch_chromium

pytestmark = pytest.mark.slow

scopes: list[dict[str, Any]] = []


async def recording_demo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] in ("http", "websocket"):
        scopes.append({"type": scope["type"], "path": scope["path"], "http_version": scope["http_version"]})
    await demo_app(scope, receive, send)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[int]:
    """Chromium that accepts the test certificate; yields its DevTools port."""
    with launch_chromium(tmp_path / "profile", ["--ignore-certificate-errors"]) as port:
        yield port


def test_chromium_loads_the_demo_over_h2(serve: Any, browser: int, tmp_path: Path) -> None:
    ca = trustme.CA()
    pem = tmp_path / "server.pem"
    pem.write_bytes(ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.bytes())
    scopes.clear()
    srv = serve(recording_demo, tls_certfile=str(pem))
    with httpx.Client(trust_env=False, timeout=10) as http:
        page = next(t for t in http.get(f"http://127.0.0.1:{browser}/json/list").json() if t["type"] == "page")

    async def drive() -> tuple[str, str, str, bytes]:
        async with connect(page["webSocketDebuggerUrl"], proxy=None, max_size=None) as ws:
            tools = DevTools(ws)
            await tools.call("Page.enable")
            await tools.call("Page.navigate", url=srv.url + "/")
            protocol = await tools.wait_for("document.readyState === 'complete' && "
                                            "performance.getEntries()[0].nextHopProtocol")
            events = await tools.wait_for("document.getElementById('events').textContent.trim()")
            await tools.call("Page.navigate", url=srv.url + "/ws")
            status = await tools.wait_for("(e => e && e.textContent === 'open' ? 'open' : '')"
                                          "(document.getElementById('status'))")
            await tools.evaluate("document.getElementById('msg').value = 'over h2';"
                                 "document.querySelector('#form button').click(); true")
            echoed = await tools.wait_for("Array.from(document.querySelectorAll('#log .echo'))"
                                          ".map(e => e.textContent).join('|')")
            shot = await tools.call("Page.captureScreenshot", format="png")
            return protocol, events, status + " " + echoed, base64.b64decode(shot["data"])

    protocol, events, status, png = asyncio.run(asyncio.wait_for(drive(), 90))
    assert protocol == "h2"
    assert events  # server-sent events streamed in over their HTTP/2 stream
    assert status == "open over h2"
    assert png.startswith(b"\x89PNG")
    (tmp_path / "h2-page.png").write_bytes(png)
    http_scopes = [s for s in scopes if s["type"] == "http"]
    assert http_scopes and {s["http_version"] for s in http_scopes} == {"2"}
    # Chromium opens the page's WebSocket over the same HTTP/2 connection (RFC 8441).
    assert [s["http_version"] for s in scopes if s["type"] == "websocket"] == ["2"]
