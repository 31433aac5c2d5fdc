"""Hostile input on the HTTP/3 port: the worker stays alive and its state
stays bounded (each case is listed in docs/reliability.md).

* garbage datagrams of every size and shape: dropped, nothing kept;
* a flood of Initial packets from many source ports: without Retry at most
  ``max_connections`` half-open connections, which the handshake timeout
  frees; with Retry no state at all, and a real client still gets in;
* a client opening more streams than ``max_concurrent_streams``: aioquic's
  client waits for credit; one that ignores the limit is closed with
  STREAM_LIMIT_ERROR, and the worker serves the next client;
* request heads over the limit, as sent or as QPACK decodes them (a few
  bytes naming a large dynamic-table entry many times): 431 on that
  stream, the connection goes on.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from pounce import hookimpl
from pounce.testing import ServerThread, wait_for
from tests.h3client import H3Certs, h3_connect, run, udp_port

pytest.importorskip("aioquic")

STREAM_LIMIT_ERROR = 0x4


class WorkerSpy:
    """Notes the worker (``pounce_worker_started``) to count its connections."""

    name = "worker-spy"

    def __init__(self) -> None:
        self.workers: list[Any] = []

    @hookimpl
    def pounce_worker_started(self, worker: Any) -> None:
        self.workers.append(worker)

    def quic_connections(self) -> int:
        connections = self.workers[0].ctx.connections
        return sum(1 for conn in list(connections) if hasattr(conn, "quic"))


@pytest.fixture
def certs(tmp_path: Path) -> H3Certs:
    return H3Certs(tmp_path)


CONCURRENT: list[int] = [0, 0]  # now, most
RELEASE = threading.Event()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/hold":
        CONCURRENT[0] += 1
        CONCURRENT[1] = max(CONCURRENT)
        try:
            await asyncio.get_running_loop().run_in_executor(None, RELEASE.wait, 20)
        finally:
            CONCURRENT[0] -= 1
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def serve(certs: H3Certs, **overrides: Any) -> tuple[ServerThread, WorkerSpy]:
    spy = WorkerSpy()
    server = ServerThread(app, plugins=[spy], **certs.overrides(**overrides)).start()
    return server, spy


async def still_serves(port: int, certs: H3Certs) -> int | None:
    async with h3_connect(port, certs.ca_pem) as client:
        return (await client.request("GET", "/")).status


def test_garbage_datagrams_are_dropped(certs: H3Certs, errors: Any) -> None:
    server, spy = serve(certs)
    port = udp_port(server)
    rng = __import__("random").Random(7)
    probes: list[bytes] = [b"", b"\x00", b"\xff" * 1200, b"GET / HTTP/1.1\r\n\r\n"]
    probes += [rng.randbytes(rng.randrange(1, 1500)) for _ in range(400)]
    # Long headers: unknown version (answered with version negotiation only
    # at full size), a CID length over 20, a truncated Initial.
    probes += [b"\xc0" + b"\x0a\x0a\x0a\x0a" + b"\x08" + os.urandom(8) + b"\x08" + os.urandom(8) + b"\x00" * 1200,
               b"\xc0\x00\x00\x00\x01\x30" + os.urandom(60),
               b"\xc0\x00\x00\x00\x01\x08" + os.urandom(8) + b"\x00\x00\x44\xd0" + os.urandom(20)]
    # Short headers for connections that do not exist.
    probes += [b"\x40" + os.urandom(8) + os.urandom(100) for _ in range(100)]
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.settimeout(0.5)
    try:
        for probe in probes:
            if probe:
                sender.sendto(probe, ("127.0.0.1", port))
        replies = []
        with pytest.raises(socket.timeout):
            while True:
                replies.append(sender.recv(65535))
    finally:
        sender.close()
    try:
        # The only answer garbage may draw is a version negotiation (version
        # 0), and only to a full-size long-header datagram (RFC 9000 6.1):
        # never amplified, never a handshake.
        eligible = sum(1 for p in probes if len(p) >= 1200 and p[0] & 0x80)
        assert len(replies) <= eligible
        for reply in replies:
            assert reply[0] & 0x80 and reply[1:5] == b"\x00\x00\x00\x00", reply[:8]
            assert len(reply) < 1200
        assert spy.quic_connections() == 0
        assert run(still_serves(port, certs)) == 200
        assert httpx.get(server.url, verify=certs.client_context()).status_code == 200
        assert not errors.messages()
    finally:
        server.stop()


def initial_packets(count: int, port: int) -> list[bytes]:
    """Real client Initial datagrams (each its own connection ID), as
    aioquic's client would send them first."""
    from aioquic.h3.connection import H3_ALPN
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection

    out = []
    for _ in range(count):
        config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name="localhost")
        client = QuicConnection(configuration=config)
        client.connect(("127.0.0.1", port), now=time.monotonic())
        out.append(client.datagrams_to_send(now=time.monotonic())[0][0])
    return out


def flood(port: int, packets: list[bytes]) -> int:
    """Send each Initial from its own source port; count the replies."""
    replies = 0
    sockets = []
    for packet in packets:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(("127.0.0.1", 0))
        sock.sendto(packet, ("127.0.0.1", port))
        sockets.append(sock)
    deadline = time.monotonic() + 2.0
    pending = set(sockets)
    while pending and time.monotonic() < deadline:
        for sock in list(pending):
            try:
                while sock.recv(65535):
                    replies += 1
                    pending.discard(sock)
            except BlockingIOError:
                pass
        time.sleep(0.01)
    for sock in sockets:
        sock.close()
    return replies


@pytest.mark.slow
def test_initial_flood_without_retry_is_bounded_by_max_connections(certs: H3Certs, errors: Any) -> None:
    server, spy = serve(certs, http3_max_connections=20, http_timeout_request_header=1.0)
    port = udp_port(server)
    try:
        packets = initial_packets(300, port)
        replies = flood(port, packets)
        assert replies >= 290  # every Initial answered: a handshake or a refusal
        assert spy.quic_connections() <= 20
        # The half-open ones give their places back after the handshake timeout.
        wait_for(lambda: spy.quic_connections() == 0, 10, what="the half-open connections to time out")
        assert run(still_serves(port, certs)) == 200
        assert not errors.messages()
    finally:
        server.stop()


@pytest.mark.slow
def test_initial_flood_with_retry_keeps_no_state(certs: H3Certs, errors: Any) -> None:
    server, spy = serve(certs, http3_retry=True, http3_max_connections=20)
    port = udp_port(server)
    try:
        packets = initial_packets(300, port)
        replies = flood(port, packets)
        assert replies >= 290  # each got a Retry
        assert spy.quic_connections() == 0
        # A real client answers the Retry and gets in.
        assert run(still_serves(port, certs)) == 200
        assert not errors.messages()
    finally:
        server.stop()


def test_streams_past_the_limit(certs: H3Certs, errors: Any) -> None:
    server, spy = serve(certs, http3_max_concurrent_streams=5)
    port = udp_port(server)

    async def polite() -> list[Any]:
        """aioquic's client waits for credit: at most 5 at a time reach the app."""
        async with h3_connect(port, certs.ca_pem) as client:
            streams = [client.open("GET", "/hold", end=True) for _ in range(12)]
            deadline = asyncio.get_running_loop().time() + 10
            while CONCURRENT[0] < 5:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
            RELEASE.set()
            return [await stream.done() for stream in streams]

    async def rude() -> Any:
        """A client that ignores MAX_STREAMS is closed with STREAM_LIMIT_ERROR."""
        async with h3_connect(port, certs.ca_pem) as client:
            client.protocol._quic._remote_max_streams_bidi = 1000
            for _ in range(20):
                client.open("GET", "/hold", end=True)
            deadline = asyncio.get_running_loop().time() + 10
            while client.protocol.terminated is None:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
            return client.protocol.terminated

    try:
        RELEASE.clear()
        CONCURRENT[:] = [0, 0]
        replies = run(polite())
        assert [r.status for r in replies] == [200] * 12 and CONCURRENT[1] == 5
        RELEASE.clear()
        closed = run(rude())
        assert closed.error_code == STREAM_LIMIT_ERROR
        RELEASE.set()
        assert run(still_serves(port, certs)) == 200
        wait_for(lambda: CONCURRENT[0] == 0, 10, what="the held requests to end")
        assert not errors.messages()
    finally:
        RELEASE.set()
        server.stop()


def test_request_heads_over_the_limit(certs: H3Certs, errors: Any) -> None:
    server, spy = serve(certs, http_max_incomplete_event_size=4096)
    port = udp_port(server)

    async def main() -> list[Any]:
        async with h3_connect(port, certs.ca_pem) as client:
            huge = await client.request("GET", "/", headers=[("x-big", "a" * 8000)])
            many = await client.request("GET", "/", headers=[(f"x-{i}", "b" * 100) for i in range(100)])
            fine = await client.request("GET", "/")
        async with h3_connect(port, certs.ca_pem) as client:
            # Small on the wire, large decoded: the client's encoder puts a
            # 1500-byte value in QPACK's dynamic table (Huffman-coded, on its
            # encoder stream or once in the head) and names it ten times.
            assert (await client.request("GET", "/", headers=[("x-entry", "c" * 1500)])).status == 200
            stream = client.open("GET", "/", [("x-entry", "c" * 1500)] * 10, end=True)
            wire = client.protocol._quic._streams[stream.stream_id].sender.highest_offset
            bomb = await stream.done()
            after = await client.request("GET", "/")
        return [huge, many, bomb, fine, after, wire]

    try:
        huge, many, bomb, fine, after, wire = run(main())
        assert huge.status == 431 and many.status == 431 and fine.status == 200 and after.status == 200
        # Under the limit as sent (the encoded check passes it), 15 KB decoded.
        assert bomb.status == 431 and wire < 2048
        assert not errors.messages()
    finally:
        server.stop()
