"""An HTTP/3 client for the tests, on aioquic's client API.

``async with h3_connect(port, ca) as client:`` gives a connected client;
``await client.request("GET", "/")`` a whole :class:`Reply`;
``client.open(...)`` a :class:`ClientStream` to stream a body, read the
reply piece by piece, or reset. The client also notes what a plain
aioquic client would not show: the GOAWAY frames the server sends on its
control stream, the connection's close code, and a way to move to another
local port mid-connection (:meth:`H3Client.migrate`) as a phone changing
networks would.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.buffer import Buffer, BufferReadError
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, StreamReset

GOAWAY = 0x7


class Reply:
    """A response as it arrives: status, headers, body pieces, trailers."""

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.interim: list[int] = []
        self.chunks: list[bytes] = []
        self.trailers: list[tuple[bytes, bytes]] = []
        self.reset_code: int | None = None
        self.ended = asyncio.Event()
        self.headers_event = asyncio.Event()
        self.data_event = asyncio.Event()

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def header(self, name: str) -> str | None:
        key = name.lower().encode()
        for n, v in self.headers:
            if n == key:
                return v.decode("latin-1")
        return None

    def __repr__(self) -> str:
        return f"Reply(status={self.status}, {len(self.body)} bytes, reset={self.reset_code})"


class H3Protocol(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.replies: dict[int, Reply] = {}
        self.goaway_ids: list[int] = []
        self.goaway = asyncio.Event()
        self.terminated: ConnectionTerminated | None = None
        self._control: dict[int, bytes] = {}

    def quic_event_received(self, event: Any) -> None:
        if isinstance(event, ConnectionTerminated):
            self.terminated = event
            for reply in self.replies.values():
                reply.ended.set()
                reply.headers_event.set()
                reply.data_event.set()
        elif isinstance(event, StreamReset):
            reply = self.replies.get(event.stream_id)
            if reply is not None:
                reply.reset_code = event.error_code
                reply.ended.set()
                reply.headers_event.set()
                reply.data_event.set()
        if hasattr(event, "stream_id") and hasattr(event, "data") and event.stream_id & 3 == 3:
            self._watch_control(event.stream_id, event.data)
        for h3_event in self.h3.handle_event(event):
            reply = self.replies.get(getattr(h3_event, "stream_id", -1))
            if reply is None:
                continue
            if isinstance(h3_event, HeadersReceived):
                fields = h3_event.headers
                if reply.status is None:
                    status = int(dict(fields)[b":status"])
                    if status < 200:
                        reply.interim.append(status)
                    else:
                        reply.status = status
                        reply.headers = [(n, v) for n, v in fields if not n.startswith(b":")]
                        reply.headers_event.set()
                else:
                    reply.trailers = list(fields)
            elif isinstance(h3_event, DataReceived):
                if h3_event.data:
                    reply.chunks.append(h3_event.data)
                    reply.data_event.set()
            if getattr(h3_event, "stream_ended", False):
                reply.ended.set()
                reply.data_event.set()

    def _watch_control(self, stream_id: int, data: bytes) -> None:
        """Read the server's control stream for GOAWAY frames (aioquic's
        HTTP/3 layer skips them)."""
        buffered = self._control.get(stream_id, b"") + data
        buf = Buffer(data=buffered)
        consumed = 0
        try:
            if stream_id not in self._control and buf.pull_uint_var() != 0:
                self._control[stream_id] = b"\xff"  # not a control stream
                return
            consumed = buf.tell()
            while not buf.eof():
                frame_type = buf.pull_uint_var()
                length = buf.pull_uint_var()
                payload = buf.pull_bytes(length)
                consumed = buf.tell()
                if frame_type == GOAWAY:
                    self.goaway_ids.append(Buffer(data=payload).pull_uint_var())
                    self.goaway.set()
        except BufferReadError:
            pass
        if self._control.get(stream_id) == b"\xff":
            return
        self._control[stream_id] = buffered[consumed:]


class ClientStream:
    """One request stream, driven by the test."""

    def __init__(self, client: H3Client, stream_id: int) -> None:
        self.client = client
        self.stream_id = stream_id
        self.reply = client.protocol.replies[stream_id]

    def send(self, data: bytes, end: bool = False) -> None:
        self.client.protocol.h3.send_data(self.stream_id, data, end)
        self.client.protocol.transmit()

    def send_trailers(self, fields: list[tuple[bytes, bytes]]) -> None:
        self.client.protocol.h3.send_headers(self.stream_id, fields, end_stream=True)
        self.client.protocol.transmit()

    def reset(self, code: int = 0x10C) -> None:
        """RESET_STREAM and STOP_SENDING (H3_REQUEST_CANCELLED by default)."""
        quic = self.client.protocol._quic
        quic.reset_stream(self.stream_id, code)
        with contextlib.suppress(ValueError):
            quic.stop_stream(self.stream_id, code)
        self.client.protocol.transmit()

    async def headers(self, timeout: float = 10.0) -> Reply:
        await asyncio.wait_for(self.reply.headers_event.wait(), timeout)
        return self.reply

    async def read_some(self, timeout: float = 10.0) -> bytes:
        """The body bytes that arrived since the last call (waits for some)."""
        reply = self.reply
        await asyncio.wait_for(reply.data_event.wait(), timeout)
        reply.data_event.clear()
        data = reply.body
        reply.chunks.clear()
        return data

    async def done(self, timeout: float = 10.0) -> Reply:
        await asyncio.wait_for(self.reply.ended.wait(), timeout)
        return self.reply


class H3Client:
    def __init__(self, protocol: H3Protocol, authority: str) -> None:
        self.protocol = protocol
        self.authority = authority

    def open(self, method: str, path: str, headers: list[tuple[str, str]] | None = None,
             *, end: bool = False) -> ClientStream:
        protocol = self.protocol
        stream_id = protocol._quic.get_next_available_stream_id()
        protocol.replies[stream_id] = Reply(stream_id)
        fields = [(b":method", method.encode()), (b":scheme", b"https"),
                  (b":authority", self.authority.encode()), (b":path", path.encode())]
        fields += [(n.lower().encode(), v.encode()) for n, v in headers or []]
        protocol.h3.send_headers(stream_id, fields, end_stream=end)
        protocol.transmit()
        return ClientStream(self, stream_id)

    async def request(self, method: str = "GET", path: str = "/", headers: list[tuple[str, str]] | None = None,
                      body: bytes | None = None, timeout: float = 10.0) -> Reply:
        stream = self.open(method, path, headers, end=not body)
        if body:
            stream.send(body, end=True)
        return await stream.done(timeout)

    async def migrate(self) -> None:
        """Go on from a new local UDP port (connection migration)."""
        loop = asyncio.get_running_loop()
        old = self.protocol._transport
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", 0, 0, 0))
        await loop.create_datagram_endpoint(lambda: self.protocol, sock=sock)
        if old is not None:
            old.close()

    @property
    def local_port(self) -> int:
        return self.protocol._transport.get_extra_info("sockname")[1]


@contextlib.asynccontextmanager
async def h3_connect(port: int, ca: str | None = None, *, host: str = "127.0.0.1",
                     server_name: str = "localhost", wait_connected: bool = True,
                     session_ticket_handler: Any = None, **quic: Any) -> AsyncIterator[H3Client]:
    """A connected HTTP/3 client (``ca``: the CA file to verify the server
    with; None skips verification). Closed on exit."""
    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=server_name, **quic)
    if ca is not None:
        configuration.load_verify_locations(ca)
    else:
        configuration.verify_mode = ssl.CERT_NONE
    async with connect(host, port, configuration=configuration, create_protocol=H3Protocol,
                       wait_connected=wait_connected, session_ticket_handler=session_ticket_handler) as protocol:
        yield H3Client(protocol, f"{server_name}:{port}")  # type: ignore[arg-type]


def run(coro: Any, timeout: float = 30.0) -> Any:
    """Run a test's coroutine on a fresh loop, bounded in time."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


class H3Certs:
    """A trustme CA and a certificate for localhost/127.0.0.1, as PEM files."""

    def __init__(self, root: Path) -> None:
        import trustme

        self.ca = trustme.CA()
        issued = self.ca.issue_cert("localhost", "127.0.0.1")
        self.ca_pem = str(root / "ca.pem")
        self.cert = str(root / "server.crt")
        self.key = str(root / "server.key")
        Path(self.ca_pem).write_bytes(self.ca.cert_pem.bytes())
        Path(self.cert).write_bytes(issued.cert_chain_pems[0].bytes())
        Path(self.key).write_bytes(issued.private_key_pem.bytes())

    def client_context(self) -> ssl.SSLContext:
        """A TLS client context that trusts the CA (for TCP clients)."""
        return ssl.create_default_context(cafile=self.ca_pem)

    def overrides(self, **more: Any) -> dict[str, Any]:
        """ServerThread overrides for HTTPS plus HTTP/3."""
        return {"tls_certfile": self.cert, "tls_keyfile": self.key, "http3_enabled": True, **more}

    def args(self) -> list[str]:
        """The same as command-line flags."""
        return ["--ssl-certfile", self.cert, "--ssl-keyfile", self.key, "--http3"]


def udp_port(server: Any) -> int:
    """The HTTP/3 port of a running ServerThread."""
    for listener in server.server.listeners:
        if listener.kind == "quic":
            return int(listener.options["port"])
    raise AssertionError("no HTTP/3 listener")
