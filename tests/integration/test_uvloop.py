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


def test_uvloop_reads_the_plain_way() -> None:
    """On uvloop a protocol class goes through reading_for, which makes it a
    plain ``asyncio.Protocol`` too: uvloop then hands ``data_received`` the
    bytes it made in C and never asks for a buffer (two Python calls a read
    fewer). Should uvloop change the rule it picks by, this fails, rather
    than the saving going unnoticed. asyncio's loops keep the buffer."""
    import asyncio

    import uvloop

    from pounce.core.transport.connection import reading_for

    seen: list[Any] = []

    class Probe(asyncio.BufferedProtocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def get_buffer(self, sizehint: int) -> memoryview:
            seen.append("get_buffer")
            return memoryview(bytearray(65536))

        def buffer_updated(self, nbytes: int) -> None:
            seen.append("buffer_updated")
            self.transport.close()

        def data_received(self, data: bytes) -> None:
            seen.append(data)
            self.transport.close()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        plain = reading_for(Probe, loop)
        assert issubclass(plain, Probe) and issubclass(plain, asyncio.Protocol)
        assert reading_for(Probe, loop) is plain  # (made once)
        server = await loop.create_server(plain, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello")
        await asyncio.wait_for(reader.read(), 10)  # the server closes after its read
        writer.close()
        server.close()
        await server.wait_closed()

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert seen == [b"hello"]
    plain_asyncio = asyncio.new_event_loop()
    try:
        assert reading_for(Probe, plain_asyncio) is Probe
    finally:
        plain_asyncio.close()
