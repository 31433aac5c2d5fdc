"""WebSocket over HTTP/2 (RFC 8441): one stream of an HTTP/2 connection
carries one WebSocket.

The client opens it with an extended CONNECT (``:protocol websocket``,
allowed because the server's SETTINGS say ``ENABLE_CONNECT_PROTOCOL``); a
``200`` accepts it and the stream's DATA frames then carry WebSocket frames
both ways. The ASGI side is the same
:class:`~pounce.core.asgi.websocket.WebSocketStream` that HTTP/1.1 upgrades
use: :class:`H2WebSocket` is its owner, turning its calls into the stream's
frames. Flow control is the stream's: while the app falls behind, the bytes
it has not taken are not acknowledged, so the client's window shuts.

Closing: the WebSocket closing handshake ends the stream both ways
(END_STREAM); a peer that never ends its side is reset after
``CLOSE_TIMEOUT``. A reset stream or a lost connection is an abnormal close
(1006) for the app.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from pounce.core.asgi.scope import build_scope
from pounce.core.asgi.websocket import CLOSE_TIMEOUT, WebSocketStream
from pounce.core.protocol.events import LocalProtocolError, Request
from pounce.core.protocol.http2 import ErrorCodes, StreamClosed
from pounce.core.protocol.websocket import HandshakeError, parse_h2_handshake

if TYPE_CHECKING:
    import asyncio

    from pounce.core.asgi.scope import ConnectionInfo
    from pounce.core.protocol.http2 import H2Connection
    from pounce.core.transport.context import WorkerContext

__all__ = ["H2WebSocket", "open_websocket"]


class H2Protocol(Protocol):
    """What a WebSocket stream uses of its HTTP/2 connection
    (:class:`pounce.core.transport.http2.H2Protocol`, which imports this
    module: described here rather than imported back)."""

    ctx: WorkerContext
    conn: H2Connection
    info: ConnectionInfo | None
    loop: asyncio.AbstractEventLoop
    write_paused: bool

    @property
    def client(self) -> tuple[str, int] | None: ...

    def _queue(self, data: bytes) -> None: ...

    async def drain(self, stream: Any) -> None: ...

    def stream_done(self, stream: Any) -> None: ...

logger = logging.getLogger("pounce.websocket")


def open_websocket(protocol: H2Protocol, request: Request) -> H2WebSocket | None:
    """Start the WebSocket an extended CONNECT asks for; a malformed one is
    answered (400/426) without the app, and None returned."""
    conn = protocol.conn
    stream_id = request.stream_id
    try:
        handshake = parse_h2_handshake(request)
    except HandshakeError as exc:
        logger.debug("bad WebSocket-over-HTTP/2 handshake from %s: %s", protocol.client, exc)
        body = (str(exc) + "\n").encode("utf-8")
        conn.response(stream_id, exc.status, [(b"content-type", b"text/plain; charset=utf-8"), *exc.headers],
                      body, False)
        conn.reset(stream_id, ErrorCodes.NO_ERROR, counted=True)
        return None
    ctx = protocol.ctx
    scope = build_scope(ctx, protocol.info, request, "websocket")  # type: ignore[arg-type]
    scope["subprotocols"] = handshake.subprotocols
    scope["extensions"]["websocket.http.response"] = {}
    owner = H2WebSocket(protocol, stream_id)
    owner.ws = WebSocketStream(owner, ctx, scope, handshake)
    owner.ws.start()
    return owner


class H2WebSocket:
    """The :class:`~pounce.core.asgi.websocket.WebSocketOwner` of one
    WebSocket stream, and what the HTTP/2 connection sees of it."""

    def __init__(self, protocol: H2Protocol, stream_id: int) -> None:
        self.protocol = protocol
        self.conn = protocol.conn
        self.stream_id = stream_id
        self.ws: WebSocketStream = None  # type: ignore[assignment]
        self.reading = True
        self.unacked = 0  # bytes read but not acknowledged while not reading
        self.local_ended = False
        self.remote_ended = False
        self.disconnected = False
        self._close_timer: asyncio.TimerHandle | None = None

    @property
    def task(self) -> Any:
        return self.ws.task if self.ws is not None else None

    # -- from the connection ------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if self.reading:
            self.conn.ack(self.stream_id, len(data))
            self.protocol._queue(self.conn.data_to_send())
        else:
            self.unacked += len(data)
        self.ws.receive_data(data)

    def receive_eof(self) -> None:
        self.remote_ended = True
        self.ws.receive_eof()
        if self.local_ended:
            self._lost()

    def on_disconnect(self) -> None:
        """The stream was reset."""
        self._lost()

    def connection_lost(self) -> None:
        self._lost()

    def shutdown(self) -> None:
        self.ws.shutdown()

    def _lost(self) -> None:
        if self.disconnected:
            return
        self.disconnected = True
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self.ws.connection_lost()

    # -- WebSocketOwner ----------------------------------------------------------------------

    @property
    def write_paused(self) -> bool:
        return self.protocol.write_paused or self.conn.pending(self.stream_id) > 0

    def accept(self, headers: list[tuple[bytes, bytes]]) -> None:
        try:
            self.conn.response(self.stream_id, 200, headers, b"", True)
        except StreamClosed:
            self.protocol.loop.call_soon(self._lost)
        self.protocol._queue(self.conn.data_to_send())

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, more: bool) -> None:
        try:
            if status:
                self.conn.response(self.stream_id, status, headers, body, more)
            else:
                self.conn.body(self.stream_id, body, more)
        except LocalProtocolError:
            self.conn.reset(self.stream_id, ErrorCodes.INTERNAL_ERROR)
        except StreamClosed:
            self.protocol.loop.call_soon(self._lost)
        if not more:
            self.local_ended = True
        self.protocol._queue(self.conn.data_to_send())

    def write(self, data: bytes) -> None:
        if data and not self.disconnected and not self.local_ended:
            try:
                self.conn.body(self.stream_id, data, True)
            except StreamClosed:
                self.protocol.loop.call_soon(self._lost)
            self.protocol._queue(self.conn.data_to_send())

    def close(self) -> None:
        """End our side of the stream; the WebSocket is over when the peer
        ends its side too (or after ``CLOSE_TIMEOUT``, with a reset)."""
        if self.disconnected:
            return
        if not self.local_ended:
            self.local_ended = True
            try:
                self.conn.body(self.stream_id, b"", False)
            except StreamClosed:
                self.remote_ended = True  # nothing more will come either
            self.protocol._queue(self.conn.data_to_send())
        if self.remote_ended:
            self.protocol.loop.call_soon(self._lost)
        elif self._close_timer is None:
            self._close_timer = self.protocol.loop.call_later(CLOSE_TIMEOUT, self._give_up)

    def _give_up(self) -> None:
        self._close_timer = None
        self.conn.reset(self.stream_id, ErrorCodes.CANCEL)
        self.protocol._queue(self.conn.data_to_send())
        self._lost()

    def set_reading(self, on: bool) -> None:
        self.reading = on
        if on and self.unacked:
            self.conn.ack(self.stream_id, self.unacked)
            self.unacked = 0
            self.protocol._queue(self.conn.data_to_send())

    async def drain(self) -> None:
        await self.protocol.drain(self)

    def done(self) -> None:
        self.protocol.stream_done(self)
