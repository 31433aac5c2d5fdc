"""Headless Chromium over HTTPS: the demo page comes over HTTP/2 (ALPN h2),
its server-sent events stream in, and its WebSocket echoes, all on one
connection; the page itself reports ``nextHopProtocol``."""

from __future__ import annotations

import asyncio
import base64
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
import trustme
from websockets.asyncio.client import connect

from pounce.demo import app as demo_app
from tests.conftest import need_command

scopes: list[dict[str, Any]] = []


async def recording_demo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] in ("http", "websocket"):
        scopes.append({"type": scope["type"], "path": scope["path"], "http_version": scope["http_version"]})
    await demo_app(scope, receive, send)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[int]:
    """Headless Chromium that accepts the test CA's certificate; yields its
    DevTools port."""
    binary = need_command("chromium")
    profile = tmp_path / "profile"
    profile.mkdir()
    proc = subprocess.Popen(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", "--no-default-browser-check", "--disable-dev-shm-usage",
         "--ignore-certificate-errors", f"--user-data-dir={profile}", "--remote-debugging-port=0",
         "--remote-allow-origins=*", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chromium did not start (exit {proc.poll()})")
            time.sleep(0.1)
        yield int(port_file.read_text().split()[0])
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


async def evaluate(ws: Any, counter: list[int], expression: str) -> Any:
    counter[0] += 1
    await ws.send(json.dumps({"id": counter[0], "method": "Runtime.evaluate",
                              "params": {"expression": expression, "returnByValue": True}}))
    while True:
        reply = json.loads(await ws.recv())
        if reply.get("id") == counter[0]:
            return reply["result"]["result"].get("value")


async def call(ws: Any, counter: list[int], method: str, **params: Any) -> dict[str, Any]:
    counter[0] += 1
    await ws.send(json.dumps({"id": counter[0], "method": method, "params": params}))
    while True:
        reply = json.loads(await ws.recv())
        if reply.get("id") == counter[0]:
            return reply.get("result", {})


async def wait_for(ws: Any, counter: list[int], expression: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await evaluate(ws, counter, expression)
        if value:
            return value
        await asyncio.sleep(0.1)
    raise TimeoutError(expression)


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
            counter = [0]
            await call(ws, counter, "Page.enable")
            await call(ws, counter, "Page.navigate", url=srv.url + "/")
            protocol = await wait_for(ws, counter, "document.readyState === 'complete' && "
                                      "performance.getEntries()[0].nextHopProtocol")
            events = await wait_for(ws, counter, "document.getElementById('events').textContent.trim()")
            await call(ws, counter, "Page.navigate", url=srv.url + "/ws")
            status = await wait_for(ws, counter, "(e => e && e.textContent === 'open' ? 'open' : '')"
                                    "(document.getElementById('status'))")
            await evaluate(ws, counter, "document.getElementById('msg').value = 'over h2';"
                           "document.querySelector('#form button').click(); true")
            echoed = await wait_for(ws, counter, "Array.from(document.querySelectorAll('#log .echo'))"
                                    ".map(e => e.textContent).join('|')")
            shot = await call(ws, counter, "Page.captureScreenshot", format="png")
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
