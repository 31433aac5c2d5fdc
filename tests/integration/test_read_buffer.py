"""Every connection of a worker reads into one shared buffer
(``WorkerContext.read_buffer``) and copies out what arrived. These tests
interleave many connections' large bodies and messages, in plain TCP, TLS
and WebSocket, so that a read copied too late, too short or from the wrong
offset shows up as a wrong digest."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import random
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme
from websockets.asyncio.client import connect

from pounce.core.transport.context import READ_BUFFER_SIZE
from pounce.core.transport.http import HttpProtocol
from pounce.core.transport.websocket import WebSocketProtocol

# Each test on asyncio, and on uvloop where it is installed (there the
# protocols read the plain way: see reading_for).
LOOPS = pytest.mark.parametrize("loop", [
    "asyncio",
    pytest.param("uvloop", marks=pytest.mark.skipif(importlib.util.find_spec("uvloop") is None,
                                                    reason="uvloop is not installed")),
])
CLIENTS = 12
BODY = 3 * READ_BUFFER_SIZE // 2 + 17  # more than one full read per body


async def digest_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await receive()  # connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes") or b""
            await send({"type": "websocket.send", "text": f"{len(data)} {hashlib.sha256(data).hexdigest()}"})
    if scope["type"] != "http":
        return
    digest = hashlib.sha256()
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        digest.update(chunk)
        size += len(chunk)
        if not message.get("more_body"):
            break
    answer = f"{size} {digest.hexdigest()}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(answer)).encode())]})
    await send({"type": "http.response.body", "body": answer})


def test_the_protocols_read_into_the_worker_buffer() -> None:
    # Reading with recv(256 KiB) per read fragmented glibc's heap (RSS crept
    # in the long soak); asyncio only calls get_buffer on BufferedProtocols.
    assert issubclass(HttpProtocol, asyncio.BufferedProtocol)
    assert issubclass(WebSocketProtocol, asyncio.BufferedProtocol)


async def _post_twice(host: str, port: int, seed: int, ssl_context: ssl.SSLContext | None) -> list[str]:
    """Two pipelined POSTs of random bodies written in odd-sized pieces with
    pauses (so other connections' reads land in the buffer in between);
    returns mismatches."""
    rng = random.Random(seed)
    bodies = [rng.randbytes(BODY), rng.randbytes(rng.randrange(1, 4096))]
    reader, writer = await asyncio.open_connection(host, port, ssl=ssl_context,
                                                   server_hostname="localhost" if ssl_context else None)
    try:
        wire = b"".join(b"POST /%d HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (i, len(body), body)
                        for i, body in enumerate(bodies))
        offset = 0
        while offset < len(wire):
            step = rng.choice((1, 7, 1000, 65_536, 300_000))
            writer.write(wire[offset:offset + step])
            offset += step
            await writer.drain()
            if rng.random() < 0.3:
                await asyncio.sleep(0.001)
        problems = []
        for body in bodies:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            answer = (await reader.readexactly(length)).decode()
            expected = f"{len(body)} {hashlib.sha256(body).hexdigest()}"
            if not head.startswith(b"HTTP/1.1 200") or answer != expected:
                problems.append(f"client {seed}: {head[:12]!r} {answer} != {expected}")
        return problems
    finally:
        writer.close()


def _run_clients(port: int, ssl_context: ssl.SSLContext | None = None) -> list[str]:
    async def main() -> list[str]:
        results = await asyncio.wait_for(
            asyncio.gather(*(_post_twice("127.0.0.1", port, seed, ssl_context) for seed in range(CLIENTS))),
            timeout=60)
        return [problem for result in results for problem in result]

    return asyncio.run(main())


@LOOPS
def test_interleaved_large_bodies_arrive_intact(serve: Any, loop: str) -> None:
    srv = serve(digest_app, lifespan="off", loop=loop)
    assert _run_clients(srv.port) == []


@LOOPS
def test_interleaved_large_bodies_arrive_intact_over_tls(serve: Any, tmp_path: Path, loop: str) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    both = tmp_path / "both.pem"
    both.write_bytes(cert.private_key_and_cert_chain_pem.bytes())
    srv = serve(digest_app, lifespan="off", tls_certfile=str(both), loop=loop)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    assert _run_clients(srv.port, context) == []


@LOOPS
@pytest.mark.parametrize("compression", [None, "deflate"])
def test_interleaved_websocket_messages_arrive_intact(serve: Any, compression: str | None, loop: str) -> None:
    srv = serve(digest_app, lifespan="off", loop=loop)

    async def session(seed: int) -> list[str]:
        rng = random.Random(seed)
        problems = []
        async with connect(f"ws://127.0.0.1:{srv.port}/", compression=compression,
                           max_size=None, open_timeout=10) as ws:
            for _ in range(3):
                data = rng.randbytes(rng.choice((10, 70_000, BODY)))
                await ws.send(data)
                answer = await ws.recv()
                if answer != f"{len(data)} {hashlib.sha256(data).hexdigest()}":
                    problems.append(f"session {seed}: {answer}")
        return problems

    async def main() -> list[str]:
        results = await asyncio.wait_for(asyncio.gather(*(session(seed) for seed in range(CLIENTS))), timeout=60)
        return [problem for result in results for problem in result]

    assert asyncio.run(main()) == []
