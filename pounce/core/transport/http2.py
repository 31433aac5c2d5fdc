"""HTTP/2 over asyncio: bytes between the socket and an
:class:`~pounce.core.protocol.http2.H2Connection`, and one ASGI
:class:`~pounce.core.asgi.stream.HttpStream` per stream, many at once.

The connection arrives here from the HTTP/1.1 protocol, which hands its
transport over (:meth:`H2Protocol.take_over`) when TLS negotiated ``h2``
(ALPN), when the first bytes are the HTTP/2 preface (h2c by prior
knowledge), or after answering ``Upgrade: h2c`` with 101. From then on this
module owns what needs a loop:

- per-stream admission, with the rules of HTTP/1.1: ``max_request_body_size``
  (413, then the stream is reset), ``limit_concurrency`` (503), draining;
  and a cap on streams whose app still runs (``max_concurrent_streams``): a
  stream the client reset stays counted until its app returns, so resetting
  streams (or provoking resets) does not buy more concurrent work;
- flow control: the receive window of a stream re-opens only as its app
  consumes the body (:meth:`H2Protocol.body_consumed`); a sender blocked by a
  shut window waits in :meth:`H2Protocol.drain`, woken by the WINDOW_UPDATE
  that opens it, and is given up after ``flow_control_timeout`` (the stream
  is reset); streams wait apart, so one slow stream blocks no other;
- writes from every stream in one loop step go out in one ``write``;
- the idle timeout (``timeout_keep_alive`` with no stream open), graceful
  shutdown (GOAWAY, streams in flight finish, later ones refused) and
  ``max_requests_per_connection``.

It is the ``StreamOwner`` of its HTTP streams; WebSocket streams (RFC 8441)
get an owner of their own (:mod:`.http2_websocket`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from pounce.core.asgi.scope import build_scope
from pounce.core.asgi.stream import ClientDisconnected, HttpStream
from pounce.core.protocol.events import ConnectionClosed, Data, EndOfMessage, Request, StreamReset
from pounce.core.protocol.http2 import ErrorCodes, H2Connection, StreamClosed
from pounce.core.protocol.responses import reason
from pounce.core.transport.connection import Connection, can_half_close
from pounce.core.transport.http2_flow import H2FlowControl
from pounce.core.transport.http2_websocket import open_websocket

if TYPE_CHECKING:
    from pounce.core.asgi.scope import ConnectionInfo
    from pounce.core.transport.context import WorkerContext

__all__ = ["H2Protocol"]

logger = logging.getLogger("pounce.worker")

# Output collected from the streams is written at the end of the loop step,
# or at once when this much is waiting.
WRITE_NOW = 65536
# Seconds a closing connection has to flush its last frames (a GOAWAY).
CLOSE_GRACE = 2.0
_ERROR_TYPE = [(b"content-type", b"text/plain; charset=utf-8")]


class H2Protocol(H2FlowControl, Connection):
    """One client connection speaking HTTP/2 (the read buffer, the timer and
    the scope fields come from :class:`~pounce.core.transport.connection.Connection`;
    the connection arrives through :meth:`take_over`)."""

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        self.settings = ctx.http2
        self.conn = H2Connection(ctx.http2, defaults=ctx.default_headers)
        # Streams whose app runs (reset ones included, until the app returns).
        self.streams: dict[int, Any] = {}
        self.over_limit = False
        self._out: list[bytes] = []
        self._out_size = 0
        self._flush_scheduled = False
        self._waiters: dict[int, asyncio.Future[None]] = {}
        self._abort_timer: asyncio.TimerHandle | None = None

    # -- taking the connection over ----------------------------------------------------

    def take_over(self, transport: asyncio.Transport, info: ConnectionInfo, data: bytes = b"",
                  upgrade: tuple[bytes, Request] | None = None, over_limit: bool | None = None) -> None:
        """Start HTTP/2 on ``transport``: the server preface, then ``data``
        (what the client sent already). ``upgrade``: the ``HTTP2-Settings``
        value and the request of an ``Upgrade: h2c`` (answered 101 already),
        which becomes stream 1. ``over_limit``: the connection was over
        ``limit_concurrency`` when accepted (None: look now)."""
        self.transport = transport
        self.info = info
        ctx = self.ctx
        ctx.connections.add(self)
        if over_limit is None:
            over_limit = bool(ctx.limit_concurrency) and len(ctx.connections) > ctx.limit_concurrency
        self.over_limit = over_limit
        conn = self.conn
        if upgrade is not None:
            events = conn.upgrade(*upgrade)
        else:
            conn.initiate()
            events = []
        self._queue(conn.data_to_send())
        self._arm_idle(ctx.header_timeout or ctx.keep_alive_timeout)
        if events:
            self._handle(events)
        if data:
            self.data_received(data)
        self._flush()

    # -- asyncio callbacks -------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        conn = self.conn
        events = conn.receive_data(data)
        if events:
            self._handle(events)
        if self._waiters:
            self._wake_writers()
        self._queue(conn.data_to_send())
        if conn.closed:
            self._end(conn.error)
        elif conn.goaway_sent and not self.streams and conn.idle:
            self._end()
        if self.turn_writer.alone():
            self._flush()
        else:
            # Other connections are served in this turn: go out with theirs,
            # at the start of the next (see .turn), unless there is a lot.
            self._flush_soon()

    def eof_received(self) -> bool | None:
        # The client will send nothing more: HTTP/2 has no half-close, so the
        # connection is over once what is written is flushed.
        self._flush()
        self._disconnect_all()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.ctx.connections.discard(self)
        self._cancel_timer()
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
        self._disconnect_all()

    def pause_writing(self) -> None:
        """The client is not reading: stop reading it too. Every frame it
        sends may oblige an answer (PING, SETTINGS), so a client that does
        not read could otherwise grow the write buffer without bound."""
        self.write_paused = True
        if not self.closed and self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if not self.closed and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
        if self._waiters:
            self._wake_writers()

    # -- events ----------------------------------------------------------------------------

    def _handle(self, events: list[object]) -> None:
        streams = self.streams
        for event in events:
            kind = type(event)
            if kind is Data:
                stream = streams.get(event.stream_id)  # type: ignore[attr-defined]
                if stream is None:
                    self.conn.ack(event.stream_id, len(event.data))  # type: ignore[attr-defined]
                elif type(stream) is HttpStream:
                    stream.feed(event.data)  # type: ignore[attr-defined]
                    if stream.too_large:
                        self._too_large(stream)
                else:
                    stream.receive_data(event.data)  # type: ignore[attr-defined]
            elif kind is EndOfMessage:
                stream = streams.get(event.stream_id)  # type: ignore[attr-defined]
                if stream is not None:
                    if type(stream) is HttpStream:
                        stream.feed_end()
                    else:
                        stream.receive_eof()
            elif kind is Request:
                self._on_request(event)  # type: ignore[arg-type]
            elif kind is StreamReset:
                stream = streams.get(event.stream_id)  # type: ignore[attr-defined]
                if stream is not None:
                    stream.on_disconnect()
                    self._wake(event.stream_id)  # type: ignore[attr-defined]
            elif kind is ConnectionClosed:
                return

    def _on_request(self, request: Request) -> None:
        ctx = self.ctx
        conn = self.conn
        stream_id = request.stream_id
        if len(self.streams) >= self.settings.max_concurrent_streams or ctx.shutting_down:
            # Over the cap counting apps still running on reset streams, or
            # the worker drains: the client may retry elsewhere.
            conn.refuse(stream_id)
            return
        if ctx.max_body and request.content_length > ctx.max_body:
            self._answer(stream_id, 413)
            return
        if self.over_limit:
            if len(ctx.connections) > ctx.limit_concurrency:
                self._answer(stream_id, 503)
                conn.goaway()
                return
            self.over_limit = False
        if request.upgrade is not None:
            ws = open_websocket(self, request)
            if ws is not None:
                if not self.streams:
                    self._cancel_timer()
                self.streams[stream_id] = ws
            return
        stream = HttpStream(self, ctx, build_scope(ctx, self.info, request), request)  # type: ignore[arg-type]
        if not self.streams:
            self._cancel_timer()  # the idle timer: re-armed when the last stream is done
        self.streams[stream_id] = stream
        stream.start()

    def _answer(self, stream_id: int, status: int) -> None:
        """A plain error of pounce's own on a stream no app sees; the rest of
        the request is not read (RST_STREAM, counted against flooding)."""
        body = reason(status) + b"\n"
        self.conn.response(stream_id, status, _ERROR_TYPE, body, False)
        self.conn.reset(stream_id, ErrorCodes.NO_ERROR, counted=True)

    def _too_large(self, stream: HttpStream) -> None:
        """The body grew past ``max_request_body_size``: 413 if nothing was
        sent yet, the stream reset either way, the app disconnected."""
        stream_id = stream.stream_id
        if not stream.headers_sent:
            stream.status = 413
            stream.response_started = stream.headers_sent = stream.response_complete = True
            self.conn.response(stream_id, 413, _ERROR_TYPE, reason(413) + b"\n", False)
        self.conn.reset(stream_id, ErrorCodes.NO_ERROR if stream.status == 413 else ErrorCodes.CANCEL,
                        counted=True)
        stream.on_disconnect()

    # -- StreamOwner ----------------------------------------------------------------------------

    def send_head(self, stream: HttpStream, status: int, headers: list[tuple[bytes, bytes]], body: bytes,
                  more: bool, trailers: bool) -> bool:
        self._check_open(stream)
        conn = self.conn
        try:
            conn.response(stream.stream_id, status, headers, body, more, trailers)
        except StreamClosed:
            self._gone(stream)
        self._queue(conn.data_to_send())
        return more and (self.write_paused or conn.pending(stream.stream_id) > 0)

    def send_body(self, stream: HttpStream, body: bytes, more: bool) -> bool:
        self._check_open(stream)
        conn = self.conn
        if not more and stream.trailers_expected:
            more = True  # the trailers end the stream
        try:
            conn.body(stream.stream_id, body, more)
        except StreamClosed:
            self._gone(stream)
        self._queue(conn.data_to_send())
        return more and (self.write_paused or conn.pending(stream.stream_id) > 0)

    def send_trailers(self, stream: HttpStream, trailers: list[tuple[bytes, bytes]]) -> None:
        self._check_open(stream)
        try:
            self.conn.trailers(stream.stream_id, trailers)
        except StreamClosed:
            self._gone(stream)
        self._queue(self.conn.data_to_send())

    def send_continue(self, stream: HttpStream) -> None:
        try:
            self.conn.informational(stream.stream_id, 100)
        except StreamClosed:
            stream.on_disconnect()
        self._queue(self.conn.data_to_send())

    def send_error(self, stream: HttpStream, status: int) -> None:
        if not self.closed:
            try:
                self.conn.response(stream.stream_id, status, _ERROR_TYPE, reason(status) + b"\n", False)
            except StreamClosed:
                stream.on_disconnect()
            self._queue(self.conn.data_to_send())

    def body_consumed(self, stream: Any, size: int) -> None:
        self.conn.ack(stream.stream_id, size)
        self._queue(self.conn.data_to_send())

    def abort(self, stream: Any = None) -> None:
        """End a stream abruptly (its response cannot be completed); without a
        stream (a forced stop), end the connection and every app."""
        if stream is not None:
            self.conn.reset(stream.stream_id, ErrorCodes.INTERNAL_ERROR)
            self._queue(self.conn.data_to_send())
            return
        for each in list(self.streams.values()):
            task = getattr(each, "task", None)
            if task is not None:
                task.cancel()
        if self.transport is not None:
            self.transport.abort()
        self.closed = True
        self.ctx.connections.discard(self)

    def stream_done(self, stream: Any) -> None:
        """The app of a stream returned."""
        stream_id = stream.stream_id
        self.streams.pop(stream_id, None)
        if self.closed:
            return
        conn = self.conn
        if stream_id in conn.streams and getattr(stream, "response_complete", True):
            if conn.pending(stream_id) == 0 and _remote_open(conn, stream_id):
                # Answered without reading the whole request: the rest is not
                # wanted (RFC 9113 8.1).
                conn.reset(stream_id, ErrorCodes.NO_ERROR)
        self._queue(conn.data_to_send())
        if not self.streams:
            if conn.goaway_sent and conn.idle:
                self._end()
            else:
                self._arm_idle(self.ctx.keep_alive_timeout)

    # -- writing ---------------------------------------------------------------------------------

    def _gone(self, stream: Any) -> None:
        self._queue(self.conn.data_to_send())
        stream.on_disconnect()
        raise ClientDisconnected("the stream is closed")

    def _check_open(self, stream: HttpStream) -> None:
        if self.closed or self.conn.closed:
            stream.on_disconnect()
            raise ClientDisconnected("the client has disconnected")

    def _queue(self, data: bytes) -> None:
        """Collect output; it is written at the end of this loop step (one
        write for every stream), or now when much is waiting."""
        if not data:
            return
        self._out.append(data)
        self._out_size += len(data)
        self._flush_soon()

    def _flush_soon(self) -> None:
        if self._out_size >= WRITE_NOW:
            self._flush()
        elif self._out and not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._out:
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    # -- ending -------------------------------------------------------------------------------

    def _disconnect_all(self) -> None:
        for stream in list(self.streams.values()):
            if type(stream) is HttpStream:
                stream.on_disconnect()
            else:
                stream.connection_lost()
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_result(False)

    def _end(self, error: str = "") -> None:
        """Close after what is written (a GOAWAY is in it)."""
        if error:
            logger.debug("HTTP/2 connection from %s ended: %s", self.client, error)
        self._flush()
        self._cancel_timer()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            if can_half_close(transport):
                # A lingering close, as for HTTP/1.1: FIN after the GOAWAY,
                # then what the client still sends is read and dropped, so
                # unread input does not turn the close into a reset that
                # would lose the GOAWAY on its way.
                try:
                    transport.write_eof()
                except OSError:
                    transport.close()
                else:
                    transport.resume_reading()
            else:
                transport.close()
            # A client that neither reads nor closes is cut off after a moment.
            self._abort_timer = self.loop.call_later(CLOSE_GRACE, transport.abort)
        self.ctx.connections.discard(self)
        self.closed = True
        self._disconnect_all()

    def shutdown(self) -> None:
        """Graceful shutdown, called twice by the drain: GOAWAY first (streams
        in flight finish, new ones are refused), then close if idle."""
        conn = self.conn
        if conn.goaway_sent and not self.streams:
            self._end()
            return
        for stream in list(self.streams.values()):
            if type(stream) is not HttpStream:
                stream.shutdown()  # WebSockets close with the shutdown code
        # The first call: GOAWAY between streams; the second (the worker now
        # refuses everything new): at once.
        conn.goaway(now=self.ctx.shutting_down)
        self._queue(conn.data_to_send())
        self._flush()
        if not self.streams and conn.idle:
            self._end()

    # -- timers ---------------------------------------------------------------------------------

    def _arm_idle(self, delay: float) -> None:
        self._cancel_timer()
        if delay > 0:
            self._timer = self.loop.call_later(delay, self._on_idle)

    def _on_idle(self) -> None:
        """No stream for ``timeout_keep_alive``: GOAWAY and close."""
        self._timer = None
        if self.closed or self.streams:
            return
        self.conn.goaway(now=True)
        self._queue(self.conn.data_to_send())
        self._end()


def _remote_open(conn: H2Connection, stream_id: int) -> bool:
    stream = conn.streams.get(stream_id)
    return stream is not None and not stream.remote_ended
