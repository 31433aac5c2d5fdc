"""WebSocket over an upgraded HTTP/1.1 connection: the asyncio side.

:func:`upgrade_to_websocket` is called by the HTTP/1.1 connection when a
request asks for ``Upgrade: websocket``. A malformed handshake is answered
(400/426) without calling the app; a valid one hands the transport over to a
new :class:`WebSocketProtocol`, which moves bytes for a
:class:`~pounce.core.asgi.websocket.WebSocketStream` (the ASGI phases, the
session, the timers) and is that stream's owner.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from pounce.core.asgi.scope import build_scope
from pounce.core.asgi.websocket import WebSocketStream
from pounce.core.protocol.events import LocalProtocolError, Request
from pounce.core.protocol.websocket import Handshake, HandshakeError, parse_handshake, switching_protocols

if TYPE_CHECKING:
    from pounce.core.protocol.http11 import H1Connection
    from pounce.core.transport.http import HttpProtocol
    from pounce.core.transport.worker import WorkerContext

__all__ = ["WebSocketProtocol", "upgrade_to_websocket"]

logger = logging.getLogger("pounce.websocket")


def upgrade_to_websocket(protocol: HttpProtocol, request: Request) -> None:
    """Take over ``protocol``'s transport for a WebSocket handshake.

    Called right after the request head was read: the HTTP/1.1 connection
    then holds exactly the bytes that followed the head (frames a client
    sent early). ``limit_concurrency`` and draining were checked already.
    """
    ctx = protocol.ctx
    conn = protocol.conn
    try:
        handshake = parse_handshake(request)
    except HandshakeError as exc:
        logger.debug("bad WebSocket handshake from %s: %s", protocol.client, exc)
        conn.keep_alive = False
        body = (str(exc) + "\n").encode("utf-8")
        try:
            protocol.write(conn.response(exc.status, [(b"content-type", b"text/plain; charset=utf-8"),
                                                      *exc.headers], body, False))
        except LocalProtocolError:
            pass
        protocol._close()
        return
    transport = protocol.transport
    assert transport is not None
    scope = build_scope(ctx, protocol.info, request, "websocket")  # type: ignore[arg-type]
    scope["subprotocols"] = handshake.subprotocols
    scope["extensions"]["websocket.http.response"] = {}
    early = conn.take_held()
    conn.keep_alive = False  # a denial response ends the connection
    ws = WebSocketProtocol(ctx, transport, conn, handshake)
    ws.stream = WebSocketStream(ws, ctx, scope, handshake, early)
    # Hand the transport over: from here on the HTTP protocol must neither read
    # nor write, and it no longer counts as a connection of its own.
    protocol._cancel_timer()
    transport.set_protocol(ws)
    protocol.closed = True
    ctx.connections.discard(protocol)
    ctx.connections.add(ws)
    if protocol.read_paused:
        transport.resume_reading()
    ws.stream.start()


class WebSocketProtocol(asyncio.BufferedProtocol):
    """One upgraded connection: moves bytes for its WebSocket stream.

    Reads into the worker's shared buffer, as ``HttpProtocol`` does.
    """

    def __init__(self, ctx: WorkerContext, transport: asyncio.Transport, conn: H1Connection,
                 handshake: Handshake) -> None:
        self.ctx = ctx
        self.read_buffer = ctx.read_buffer
        self.transport = transport
        self.conn = conn  # the upgrade request's, for a denial response
        self.handshake = handshake
        self.stream: WebSocketStream = None  # type: ignore[assignment]
        self.closed = False
        self.write_paused = False
        self.read_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None

    # -- asyncio callbacks --------------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.stream.receive_data(self.read_buffer[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        self.stream.receive_data(data)

    def eof_received(self) -> bool | None:
        self.stream.receive_eof()
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self.stream.connection_lost()

    def pause_writing(self) -> None:
        self.write_paused = True
        self.stream.update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self.stream.update_reading()

    # -- WebSocketOwner -------------------------------------------------------------------

    def accept(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.write(switching_protocols(self.handshake, headers, self.ctx.default_headers.headers))

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, more: bool) -> None:
        conn = self.conn
        self.write(conn.response(status, headers, body, more) if status else conn.body(body, more))

    def write(self, data: bytes) -> None:
        # is_closing(): see HttpProtocol.write (no writes into a transport
        # that a failed send has already closed).
        if data and not self.closed and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if not self.closed:
            self.transport.close()  # flushes what is buffered, then closes

    def abort(self) -> None:
        """A forced stop: end the app and the connection now."""
        self.stream.abort()
        if not self.closed:
            self.transport.abort()
        self.closed = True
        self.ctx.connections.discard(self)

    def set_reading(self, on: bool) -> None:
        if self.closed:
            return
        if on and self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        elif not on and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    async def drain(self) -> None:
        if self.write_paused and not self.closed:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None

    def done(self) -> None:
        self.ctx.connections.discard(self)

    def shutdown(self) -> None:
        self.stream.shutdown()
