"""Chromium loads the demo page through the compression plugin: the page
arrives in a coding the browser chose, the browser decodes it, and the
page's live Server-Sent Events keep arriving through a compressed stream."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from files_probes import Probe
from websockets.asyncio.client import connect

from pounce.demo import app as demo_app
from pounce.testing import ServerThread
from tests.browser import DevTools


@pytest.mark.slow
def test_chromium_gets_the_demo_page_compressed(chromium: int) -> None:  # noqa: F811
    probe = Probe()
    with ServerThread(demo_app, plugins=(probe,), compression_enabled=True) as server:
        with httpx.Client(trust_env=False, timeout=10) as http:
            targets = http.get(f"http://127.0.0.1:{chromium}/json/list").json()
        page = next(t for t in targets if t.get("type") == "page")

        async def drive() -> tuple[Any, str]:
            async with connect(page["webSocketDebuggerUrl"], proxy=None, max_size=None) as ws:
                tools = DevTools(ws)
                await tools.call("Page.enable")
                await tools.call("Page.navigate", url=server.url + "/")
                await tools.wait_for("document.readyState === 'complete' && !!document.getElementById('events')")
                timing = await tools.evaluate(
                    "(t => ({encoded: t.encodedBodySize, decoded: t.decodedBodySize, title: document.title}))"
                    "(performance.getEntriesByType('navigation')[0])")
                events = await tools.wait_for(
                    "(t => t.includes('tick 2') ? t : '')(document.getElementById('events').textContent)")
                return timing, events

        timing, events = asyncio.run(asyncio.wait_for(drive(), 60))

    accepted = probe.requests[0][1][b"accept-encoding"].decode()
    chosen = probe.response_header("/", b"content-encoding")
    assert chosen is not None, f"the page went uncompressed (browser accepts {accepted!r})"
    assert chosen.decode() in [item.split(";")[0].strip() for item in accepted.split(",")]
    assert timing["title"] == "pounce demo"
    assert 0 < timing["encoded"] < timing["decoded"]  # the browser got fewer bytes and decoded them
    # The event stream was compressed too, and its events still arrived one by one.
    assert probe.response_header("/events", b"content-encoding") == chosen
    assert "tick 1" in events and "tick 2" in events
