"""WebSocket over an upgraded HTTP/1.1 connection: the asyncio side.

The HTTP/1.1 connection (:meth:`pounce.core.transport.http.HttpProtocol.upgrade_to_websocket`)
answers a malformed handshake (400/426) without calling the app, and hands
the transport of a valid one over to a new :class:`WebSocketProtocol`,
which moves bytes for a :class:`~pounce.core.asgi.websocket.WebSocketStream`
(the ASGI phases, the session, the timers) and is that stream's owner.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from pounce.core.asgi.websocket import WebSocketStream
from pounce.core.protocol.websocket import Handshake, switching_protocols

if TYPE_CHECKING:
    from pounce.core.protocol.http11 import H1Connection
    from pounce.core.transport.context import WorkerContext

__all__ = ["WebSocketProtocol"]

logger = logging.getLogger("pounce.websocket")


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
