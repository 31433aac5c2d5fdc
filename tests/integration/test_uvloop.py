"""pounce on uvloop (``loop = "uvloop"``, the ``pounce[uvloop]`` extra).

Skipped when uvloop is not installed: it is optional, and installing it
into the test environment would switch every other test to it too (the
default ``loop = "auto"`` prefers it). Run with uvloop importable to cover
it, e.g. ``pip install --target /tmp/uvloop-site uvloop`` and
``PYTHONPATH=/tmp/uvloop-site pytest tests/integration/test_uvloop.py``.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import httpx
import pytest

from testapps import read_body
from tests.helpers import exchange

pytestmark = pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the class of the running loop and the request body size."""
    import asyncio

    if scope["type"] != "http":
        return
    body = await read_body(receive)
    loop = type(asyncio.get_running_loop())
    answer = f"{loop.__module__} {len(body)}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": answer})


def test_serves_on_uvloop(serve: Any) -> None:
    srv = serve(app, lifespan="off", loop="uvloop")
    with httpx.Client(base_url=srv.url, timeout=10) as client:
        assert client.get("/").text == "uvloop 0"  # fast path
        assert client.post("/", content=b"x" * 100_000).text == "uvloop 100000"
        # A chunked body goes through h11.
        assert client.post("/", content=iter([b"ab", b"cd"])).text == "uvloop 4"


def test_pipelined_on_uvloop(serve: Any) -> None:
    srv = serve(app, lifespan="off", loop="uvloop")
    requests = (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    data = exchange(srv.port, requests, timeout=10)
    assert data.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert data.index(b"uvloop 0") < data.index(b"uvloop 3") < data.rindex(b"uvloop 0")


def test_http2_on_uvloop(serve: Any) -> None:
    """h2c by prior knowledge and the hand-over from HTTP/1.1, on uvloop's transports."""
    srv = serve(app, lifespan="off", loop="uvloop")
    with httpx.Client(base_url=srv.url, http1=False, http2=True, timeout=10) as client:
        response = client.post("/", content=b"y" * 300_000)
        assert response.http_version == "HTTP/2" and response.text == "uvloop 300000"
