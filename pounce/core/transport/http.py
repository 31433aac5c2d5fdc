"""HTTP/1.1 over asyncio: bytes between the socket and an
:class:`~pounce.core.protocol.http11.H1Connection`, and one ASGI
:class:`~pounce.core.asgi.stream.HttpStream` at a time.

The protocol connection says what the bytes mean; this module owns what
needs a loop: the read buffer, timers, flow control in both directions, the
admission rules of the worker (``limit_concurrency``, draining,
``max_request_body_size``), the hand-over to WebSocket, and closing without
losing a response to a reset. It is the ``StreamOwner`` of its streams.

Connection life, in the order the timers see it::

    connection_made ─ header timer ─▶ Request ─ app runs ─▶ response done
          ▲                                                     │
          └── first byte ◀─ keep-alive timer ◀─ (body drained) ─┘

The keep-alive timer is armed once per idle stretch, not once per request
(see :meth:`HttpProtocol._on_idle`); a request that arrives whole in one read
arms no timer at all.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, BinaryIO

from pounce.core.asgi.scope import build_scope
from pounce.core.asgi.stream import ClientDisconnected, HttpStream
from pounce.core.asgi.websocket import WebSocketStream
from pounce.core.protocol.events import (
    ConnectionClosed,
    Data,
    EndOfMessage,
    LocalProtocolError,
    Paused,
    ProtocolError,
    Request,
)
from pounce.core.protocol.http11 import BODY, DONE, IDLE, H1Connection
from pounce.core.protocol.responses import error_response
from pounce.core.protocol.websocket import HandshakeError, parse_handshake
from pounce.core.transport.connection import Connection, reading_for, set_nodelay
from pounce.core.transport.files import send_file
from pounce.core.transport.http2_handover import PrefaceSniffer, hand_over, upgrade_to_h2c
from pounce.core.transport.websocket import WebSocketProtocol

if TYPE_CHECKING:
    from pounce.core.transport.context import WorkerContext

__all__ = ["HttpProtocol", "set_nodelay"]

logger = logging.getLogger("pounce.worker")

# After a response, at most this much unread request body is read and thrown
# away to keep the connection; a longer one closes the connection instead.
DRAIN_LIMIT = 65536


class HttpProtocol(Connection):
    """One client connection speaking HTTP/1.1.

    ``data_received`` is kept for callers that hand bytes over directly: a
    wrapping plugin's protocol.
    """

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        self.conn = H1Connection(max_head_size=ctx.max_head_size, fast=ctx.fast_path,
                                 defaults=ctx.default_headers)
        self.stream: HttpStream | None = None
        # Over limit_concurrency when accepted: its first request gets 503.
        self.over_limit = False
        # True while the header timer runs (between the first byte of a
        # request head and the complete head): it is armed once, not per byte.
        self.reading_head = False
        # Bytes of unread request body still allowed to be thrown away after
        # the response; -1 when not draining.
        self.drain_left = -1
        # A finished response left the write buffer full: the next request
        # is taken when the transport drains (resume_writing).
        self.next_waits_for_writer = False
        # The keep-alive timer when it is the one in _timer, and the loop
        # time at which the connection, idle, closes (see _on_idle).
        self._idle_timer: asyncio.TimerHandle | None = None
        self.idle_deadline = 0.0
        # Watching the first bytes for the HTTP/2 preface (h2c by prior
        # knowledge), until they show something else.
        self.sniffer: PrefaceSniffer | None = None

    # -- asyncio callbacks -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        ctx = self.ctx
        if ctx.limit_concurrency and len(ctx.connections) > ctx.limit_concurrency:
            self.over_limit = True
        if ctx.http2.enabled:
            ssl_object = transport.get_extra_info("ssl_object")
            alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
            if alpn == "h2":
                hand_over(self)
                return
            if alpn is None:
                self.sniffer = PrefaceSniffer()
        self.reading_head = True
        self._set_timer(ctx.header_timeout, self._on_header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.stream is not None:
            self.stream.on_disconnect()

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return
        sniffer = self.sniffer
        if sniffer is not None:
            data = sniffer.feed(data)  # type: ignore[assignment]
            if data is None:
                if sniffer.found:
                    hand_over(self, sniffer.held)
                return
            self.sniffer = None
        try:
            events = self.conn.receive_data(data)
        except ProtocolError as exc:
            self._reject(exc.status, str(exc))
            return
        if events:
            self._handle(events)
        elif not self.reading_head and self.stream is None and self.conn.state is IDLE and self.conn.buffer:
            # The first bytes of a head that is not complete yet: the
            # keep-alive timer gives way to the header timer, once.
            self.reading_head = True
            self._set_timer(self.ctx.header_timeout, self._on_header_timeout)

    def eof_received(self) -> bool | None:
        self.eof_seen = True
        if self.lingering:
            return None  # closed and lingering: the client is done too
        try:
            events = self.conn.receive_eof()
        except ProtocolError as exc:
            self._reject(exc.status, str(exc))
            return None
        if events:
            self._handle(events)
        # A client that closes its side is taken to be gone, as nginx and
        # asyncio take it: the transport closes once what is written is
        # flushed, and a request in flight sees http.disconnect.
        return None

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.next_waits_for_writer:
            self.next_waits_for_writer = False
            if not self.closed and self.stream is None:
                self._next_cycle()

    # -- events --------------------------------------------------------------------

    def _handle(self, events: list[object]) -> None:
        # A request's stream starts once the whole batch is fed to it (its
        # body, its end, a pause): the app's first step runs inside start
        # (eager), and may finish the request and move on to the next.
        stream = None
        try:
            for event in events:
                kind = type(event)
                if kind is Data:
                    current = self.stream
                    if current is not None:
                        if current.feed(event.data):  # type: ignore[attr-defined]
                            self._pause_reading()
                        elif current.too_large:
                            self._reject(413, "request body too large")
                            return
                    elif self.drain_left >= 0:
                        self.drain_left -= len(event.data)  # type: ignore[attr-defined]
                        if self.drain_left < 0:
                            self._close()
                            return
                elif kind is EndOfMessage:
                    if self.stream is not None:
                        self.stream.feed_end()
                    elif self.drain_left >= 0:
                        self.drain_left = -1
                        self._next_cycle()
                        return
                elif kind is Request:
                    stream = self._on_request(event)  # type: ignore[arg-type]
                    if self.closed:
                        return
                elif kind is Paused:
                    self._pause_reading()
                elif kind is ConnectionClosed:
                    if self.stream is None and self.drain_left < 0:
                        self._close()
                    return
        finally:
            if stream is not None:
                # Eagerly for a lone request (no loop turn added); while other
                # connections are served in this turn, as a scheduled task:
                # the turn's reads first, then their apps back to back, which
                # measured faster than interleaving the two (see .turn).
                stream.start(self.turn_writer.alone())

    def _on_request(self, request: Request) -> HttpStream | None:
        """Admit a request; the stream for it, to start (by ``_handle``)."""
        if self.reading_head:
            self.reading_head = False
            self._cancel_timer()
        # (Otherwise the keep-alive timer stays armed: see _on_idle.)
        ctx = self.ctx
        if ctx.max_body and request.content_length > ctx.max_body:
            self._reject(413, "request body too large")
            return None
        if self.over_limit:
            # Over the limit when accepted; look again now, as the connections
            # that made it so may have closed since (a client that closes one
            # connection and opens the next is not over any limit).
            if len(ctx.connections) > ctx.limit_concurrency:
                self._reject(503, "Service Unavailable")
                return None
            self.over_limit = False
        if ctx.shutting_down:
            self._reject(503, "Service Unavailable")
            return None
        self.sniffer = None
        upgrade = request.upgrade
        if upgrade is not None:
            kind = upgrade.lower()
            if kind == b"websocket" and ctx.websocket.enabled:
                self.upgrade_to_websocket(request)
                return None
            if kind == b"h2c" and ctx.http2.enabled and self.info.scheme == "http" \
                    and upgrade_to_h2c(self, request):  # type: ignore[union-attr]
                return None
        stream = HttpStream(self, ctx, build_scope(ctx, self.info, request), request)  # type: ignore[arg-type]
        self.stream = stream
        return stream

    def upgrade_to_websocket(self, request: Request) -> None:
        """Hand the transport over to WebSocket for an ``Upgrade: websocket``.

        Called right after the request head was read: the HTTP/1.1 connection
        then holds exactly the bytes that followed the head (frames a client
        sent early). ``limit_concurrency`` and draining were checked already.
        A malformed handshake is answered (400/426) without calling the app.
        """
        ctx = self.ctx
        conn = self.conn
        try:
            handshake = parse_handshake(request)
        except HandshakeError as exc:
            logger.debug("bad WebSocket handshake from %s: %s", self.client, exc)
            conn.keep_alive = False
            body = (str(exc) + "\n").encode("utf-8")
            try:
                self.write(conn.response(exc.status, [(b"content-type", b"text/plain; charset=utf-8"),
                                                      *exc.headers], body, False))
            except LocalProtocolError:
                pass
            self._close()
            return
        self.write_unsent()  # (a pipelined response before it)
        transport = self.transport
        assert transport is not None
        scope = build_scope(ctx, self.info, request, "websocket")  # type: ignore[arg-type]
        scope["subprotocols"] = handshake.subprotocols
        scope["extensions"]["websocket.http.response"] = {}
        early = conn.take_held()
        conn.keep_alive = False  # a denial response ends the connection
        ws = reading_for(WebSocketProtocol, self.loop)(ctx, transport, conn, handshake)
        ws.stream = WebSocketStream(ws, ctx, scope, handshake, early)
        # From here on this protocol neither reads nor writes, and it no
        # longer counts as a connection of its own.
        self._cancel_timer()
        transport.set_protocol(ws)
        self.closed = True
        ctx.connections.discard(self)
        ctx.connections.add(ws)
        if self.read_paused:
            transport.resume_reading()
        ws.stream.start()

    # -- StreamOwner: what the stream asks of the connection -------------------------

    def send_head(self, stream: HttpStream, status: int, headers: list[tuple[bytes, bytes]], body: bytes,
                  more: bool, trailers: bool) -> bool:
        data = self.conn.response(status, headers, body, more, trailers)
        transport = self.transport
        if self.closed or transport.is_closing():  # type: ignore[union-attr]
            stream.on_disconnect()
            raise ClientDisconnected("the client has disconnected")
        if not more:
            self.write_complete(data)
            return False
        self.write_part(data)
        return self.write_paused

    def send_body(self, stream: HttpStream, body: bytes, more: bool) -> bool:
        data = self.conn.body(body, more, stream.trailers_expected)
        if data:
            transport = self.transport
            if self.closed or transport.is_closing():  # type: ignore[union-attr]
                stream.on_disconnect()
                raise ClientDisconnected("the client has disconnected")
            if more:
                self.write_part(data)
            else:
                self.write_complete(data)
        return more and self.write_paused

    def send_trailers(self, stream: HttpStream, trailers: list[tuple[bytes, bytes]]) -> None:
        self._write_or_raise(stream, self.conn.trailers(trailers))

    def send_continue(self, stream: HttpStream) -> None:
        self.write(self.conn.continue_())

    def send_error(self, stream: HttpStream, status: int) -> None:
        if not self.closed:
            self.conn.keep_alive = False
            self.write(error_response(status, None, self.ctx.default_headers.headers))

    def body_consumed(self, stream: HttpStream, size: int) -> None:
        self._resume_reading()

    async def send_file(self, stream: HttpStream, status: int, headers: list[tuple[bytes, bytes]],
                        file: BinaryIO, offset: int, count: int) -> None:
        conn = self.conn
        self._write_or_raise(stream, conn.response(status, headers, b"", True))
        if count and not conn.bodiless:
            try:
                await send_file(self.loop, self.transport, file, offset, count, self.ctx,  # type: ignore[arg-type]
                                self.drain)
            except (ConnectionError, RuntimeError, OSError) as exc:
                # The client went away mid-file (or the transport closed).
                stream.on_disconnect()
                raise ClientDisconnected("the client has disconnected") from exc
            conn.body_written(count)
        self.write(conn.body(b"", False))

    def abort(self, stream: HttpStream | None = None) -> None:
        """End the connection: the stream's response cannot be completed.
        Called without a stream (a forced stop), also cancels the app."""
        if stream is not None:
            self._close()
            return
        self.unsent = None  # (dropped, as an abort drops what the transport holds)
        if self.stream is not None and self.stream.task is not None:
            self.stream.task.cancel()
        if self.transport is not None:
            self.transport.abort()
        self.closed = True
        self.ctx.connections.discard(self)

    def stream_done(self, stream: HttpStream) -> None:
        """A request/response finished: reuse the connection or close it."""
        self.stream = None
        if self.closed:
            return
        conn = self.conn
        # (conn.can_reuse, spelt out: this runs once per request.)
        if not (conn.keep_alive and conn.reusable and conn.response_done) or stream.failed \
                or self.ctx.shutting_down:
            self._close()
            return
        if conn.state is not DONE:
            # The app answered without reading the whole body: read and drop
            # the rest (bounded) so the next request starts at a clean edge.
            if conn.state is BODY and conn.body_left > DRAIN_LIMIT:
                self._close()
                return
            self.drain_left = DRAIN_LIMIT
            self._set_timer(self.ctx.header_timeout or self.ctx.keep_alive_timeout, self._close)
            self._resume_reading()
            return
        if self.eof_seen and not conn.buffer:
            self._close()  # the client half-closed after its last request
            return
        if conn.buffer and stream.task is None:
            # Done inside its own start (eager): take the pipelined request
            # behind it on the next turn, not nested in this one.
            self._arm_idle()
            self.loop.call_soon(self._resume_cycle)
            return
        self._next_cycle()

    def _resume_cycle(self) -> None:
        if not self.closed and self.stream is None:
            self._next_cycle()

    # -- between requests ------------------------------------------------------------

    def _next_cycle(self) -> None:
        # (_arm_idle, spelt out for the common case: the timer is armed.)
        self.idle_deadline = self.clock() + self.ctx.keep_alive_timeout
        timer = self._timer
        if timer is None or timer is not self._idle_timer:
            self._arm_idle()
        if self.write_paused:
            # The client is not reading its responses: take no further
            # (pipelined) request until it does, or answers pile up in memory.
            self.next_waits_for_writer = True
            return
        if self.read_paused:
            self._resume_reading()
        try:
            events = self.conn.next_cycle()
        except ProtocolError as exc:
            self._reject(exc.status, str(exc))
            return
        if events:
            self._handle(events)
        elif self.conn.buffer and not self.reading_head:
            self.reading_head = True
            self._set_timer(self.ctx.header_timeout, self._on_header_timeout)

    def _arm_idle(self) -> None:
        loop = self.loop
        self.idle_deadline = self.clock() + self.ctx.keep_alive_timeout
        timer = self._timer
        if timer is None or timer is not self._idle_timer:
            if timer is not None:
                timer.cancel()
            self._timer = self._idle_timer = loop.call_at(self.idle_deadline, self._on_idle)

    def _on_idle(self) -> None:
        """The keep-alive timer, armed once per idle stretch rather than once
        per request (a timer and a cancel per request cost more than the rest
        of the bookkeeping): a request that starts leaves it armed, and when
        it fires it looks at what the connection is doing. Busy: nothing (the
        request's end arms the next one); idle for less than the timeout:
        armed again for the rest; else the connection closes. Any other timer
        replaces it (the header timer, the drain's). ``timeout_keep_alive = 0``
        closes as soon as the connection is idle."""
        self._timer = self._idle_timer = None
        if self.closed or self.stream is not None or self.reading_head or self.drain_left >= 0:
            return
        deadline = self.idle_deadline
        if self.loop.time() < deadline:
            self._timer = self._idle_timer = self.loop.call_at(deadline, self._on_idle)
            return
        self._close()

    # -- closing -------------------------------------------------------------------------

    def _reject(self, status: int, text: str) -> None:
        """Answer a bad request with ``status`` and close the connection.

        A request in flight is cut off: its app sees ``http.disconnect`` and
        nothing more of the request.
        """
        stream = self.stream
        if self.drain_left >= 0:
            pass  # the response is out; what follows was only being skipped
        elif stream is None or not stream.headers_sent:
            self.write(error_response(status, None, self.ctx.default_headers.headers))
            if stream is not None:
                stream.status = status
                stream.response_started = stream.headers_sent = stream.response_complete = True
        logger.debug("rejected request from %s: %s %s", self.client, status, text)
        self._close()
        if stream is not None:
            stream.on_disconnect()

    def shutdown(self) -> None:
        """Graceful shutdown, called twice by the drain.

        The first call makes the response in progress (or the next one) the
        last, with ``Connection: close``: a request already on the wire, on a
        new or an idle keep-alive connection, is still served during the
        drain's short grace. The second call closes the connection if it is
        idle by then.
        """
        conn = self.conn
        if not conn.keep_alive and self.stream is None and not self.reading_head:
            self._close()
        conn.keep_alive = False

    # -- timers and flow control ------------------------------------------------------

    def _on_header_timeout(self) -> None:
        """Slowloris guard: the request head did not arrive in time."""
        self._timer = None
        if self.stream is None:
            self._close()
