"""One QUIC connection speaking HTTP/3, and the owner of its ASGI streams.

aioquic parses (QUIC packets, HTTP/3 frames, QPACK); this module turns what
it reports into pounce's request events and runs each request through the
core's :class:`~pounce.core.asgi.stream.HttpStream`, the same request cycle
HTTP/1.1 and HTTP/2 use: the connection is the stream's
:class:`~pounce.core.asgi.stream.StreamOwner`, answering its ``send_*``
calls with HEADERS and DATA frames, opening the receive window as the app
reads (``body_consumed``), resetting the stream when a response cannot be
finished. So access logging, request observers, proxy trust,
``timeout_request`` and ``max_request_body_size`` work as they do over TCP.

What is decided here, per request: the pseudo-headers (``:authority``
becomes ``host``, as the ASGI spec asks), refusals before the app sees the
request (431 for a head over ``max_incomplete_event_size``, 413, 503 over
``limit_concurrency``, 425 for an unsafe request in 0-RTT early data,
``H3_REQUEST_REJECTED`` after GOAWAY), and the response fields
(connection-specific headers dropped, Content-Length for a body sent whole).
The connection joins the worker's connection set with ``shutdown()`` and
``abort()``, so the worker's drain sends GOAWAY, lets streams in flight
finish and closes with ``H3_NO_ERROR``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from aioquic.h3.connection import ErrorCode
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.events import (
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    HandshakeCompleted,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
)

from pounce.core.asgi.scope import ConnectionInfo, build_scope
from pounce.core.asgi.stream import ClientDisconnected, HttpStream
from pounce.core.protocol.events import STREAM, LocalProtocolError, Request
from pounce.core.protocol.responses import check_fields, reason
from pounce.plugins.http3.quic import ServerH3, ServerQuic

if TYPE_CHECKING:
    from pounce.plugins.http3.settings import H3Settings

__all__ = ["Endpoint", "H3Connection"]

logger = logging.getLogger("pounce.http3")

# Wait for the peer to acknowledge a stream's response beyond this before
# the app may send more, and go on once it is back under the low mark.
SEND_HIGH_WATER = 256 * 1024
SEND_LOW_WATER = 64 * 1024
# File bytes read per DATA frame for http.response.pathsend.
FILE_CHUNK = 64 * 1024
_NO_BODY_STATUS = frozenset({204, 304})
_SAFE_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS"})
# Fields HTTP/3 forbids in a message (RFC 9114 section 4.2): dropped from
# responses instead of making the client reject them as malformed.
_CONNECTION_FIELDS = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                                b"upgrade"})


def _is_request_stream(stream_id: int) -> bool:
    return stream_id & 3 == 0


class Endpoint(Protocol):
    """What a connection needs of the endpoint that owns it
    (:class:`~pounce.plugins.http3.endpoint.QuicEndpoint`)."""

    ctx: Any
    loop: asyncio.AbstractEventLoop
    settings: H3Settings
    open: set[Any]
    server_address: tuple[str, int]
    tls_info: dict[str, Any]

    def send(self, data: bytes, addr: Any) -> None: ...
    def schedule(self, conn: H3Connection) -> None: ...
    def add_cid(self, conn: H3Connection, cid: bytes) -> None: ...
    def remove_cid(self, conn: H3Connection, cid: bytes) -> None: ...
    def forget(self, conn: H3Connection) -> None: ...
    def default_headers(self) -> list[tuple[bytes, bytes]]: ...


class H3Connection:
    """One client's QUIC connection: its requests, as ASGI streams."""

    def __init__(self, endpoint: Endpoint, quic: ServerQuic, addr: Any) -> None:
        self.endpoint = endpoint
        self.ctx = endpoint.ctx
        self.loop: asyncio.AbstractEventLoop = endpoint.loop
        self.quic = quic
        # Only h3 is offered in ALPN, so HTTP/3 starts with the connection
        # (its SETTINGS go out as soon as keys allow, 0-RTT data included).
        self.h3 = ServerH3(quic)
        self.addr = addr
        self.info: ConnectionInfo | None = None
        self.cids: set[bytes] = set()
        self.streams: dict[int, HttpStream] = {}
        # Request streams whose remaining input is thrown away: refused, or
        # answered before their body ended (STOP_SENDING was sent).
        self.ignored: set[int] = set()
        self.head_bytes: dict[int, int] = {}  # request bytes before a complete head
        self.send_closed: set[int] = set()  # active streams whose response side is gone
        self.drain_waiters: dict[int, asyncio.Future[None]] = {}
        self.handshake_done = False
        self.goaway_id: int | None = None
        self.next_stream_id = 0  # one past the highest request stream seen
        self.closed = False
        self.over_limit = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        ctx = self.ctx
        # A handshake that does not complete in time (a spoofed address, a
        # stalled client) gives its place back, as a slow request head does.
        limit = ctx.header_timeout or endpoint.settings.idle_timeout
        self._handshake_timer: asyncio.TimerHandle | None = self.loop.call_later(limit, self._handshake_timeout)
        connections = ctx.connections
        connections.add(self)
        if ctx.limit_concurrency and len(connections) > ctx.limit_concurrency:
            self.over_limit = True

    # -- input ------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Any, now: float) -> None:
        self.addr = addr
        self.quic.receive_datagram(data, addr, now)
        self.process_events()

    def handle_timer(self) -> None:
        self._timer = None
        now = max(self._timer_at or 0.0, self.loop.time())
        self._timer_at = None
        self.quic.handle_timer(now)
        self.process_events()
        self.transmit()

    def process_events(self) -> None:
        quic = self.quic
        event = quic.next_event()
        while event is not None:
            kind = type(event)
            if kind is StreamDataReceived:
                self._stream_data(event)  # type: ignore[arg-type]
            elif kind is StreamReset or kind is StopSendingReceived:
                self._stream_gone(event)
            elif kind is HandshakeCompleted:
                self.handshake_done = True
                if self._handshake_timer is not None:
                    self._handshake_timer.cancel()
                    self._handshake_timer = None
            elif kind is ConnectionIdIssued:
                self.endpoint.add_cid(self, event.connection_id)  # type: ignore[attr-defined]
            elif kind is ConnectionIdRetired:
                self.endpoint.remove_cid(self, event.connection_id)  # type: ignore[attr-defined]
            elif kind is ConnectionTerminated:
                self._terminated()
                return
            event = quic.next_event()
        if self.drain_waiters:
            self._wake_writers()
        if self.goaway_id is not None:
            self._close_when_settled()

    def _stream_data(self, event: StreamDataReceived) -> None:
        stream_id = event.stream_id
        if stream_id in self.ignored:
            if event.end_stream:
                self.ignored.discard(stream_id)
            return
        if _is_request_stream(stream_id) and stream_id not in self.streams:
            size = self.head_bytes.get(stream_id, 0) + len(event.data)
            if size > self.ctx.max_head_size:
                self.head_bytes.pop(stream_id, None)
                self._refuse(stream_id, 431, ended=event.end_stream)
                return
            self.head_bytes[stream_id] = size
        for h3_event in self.h3.handle_event(event):
            kind = type(h3_event)
            if kind is DataReceived:
                self._body(h3_event)  # type: ignore[arg-type]
            elif kind is HeadersReceived:
                self._headers(h3_event)  # type: ignore[arg-type]
        if self.h3.failed:  # aioquic closed the connection on a protocol error
            self.endpoint.schedule(self)

    def _stream_gone(self, event: Any) -> None:
        """The peer reset its request (RESET_STREAM) or will not read the
        response (STOP_SENDING, which aioquic answers with a reset)."""
        self.h3.handle_event(event)
        stream_id = event.stream_id
        if type(event) is StreamReset:
            self.head_bytes.pop(stream_id, None)
            self.ignored.discard(stream_id)
        stream = self.streams.get(stream_id)
        if stream is not None:
            self.send_closed.add(stream_id)
            stream.on_disconnect()
            self._wake_writer(stream_id)

    def _headers(self, event: HeadersReceived) -> None:
        stream_id = event.stream_id
        stream = self.streams.get(stream_id)
        if stream is not None:
            # Trailers: ASGI has no place for request trailers; they end the body.
            if event.stream_ended:
                stream.feed_end()
            return
        self.head_bytes.pop(stream_id, None)
        self._request(stream_id, event.headers, event.stream_ended)

    def _body(self, event: DataReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is None:
            return
        data = event.data
        if data:
            self.quic.hold(event.stream_id, len(data))
            stream.feed(data)
            if stream.too_large:
                self._too_large(stream)
                return
        if event.stream_ended:
            stream.feed_end()

    # -- requests -----------------------------------------------------------------------

    def _request(self, stream_id: int, fields: list[tuple[bytes, bytes]], ended: bool) -> None:
        if stream_id >= self.next_stream_id:
            self.next_stream_id = stream_id + 4
        if self.goaway_id is not None and stream_id >= self.goaway_id:
            # After GOAWAY: not processed, so the client may retry it elsewhere.
            self._reset(stream_id, ErrorCode.H3_REQUEST_REJECTED, ended=ended)
            return
        method = path = scheme = authority = None
        headers: list[tuple[bytes, bytes]] = []
        host: bytes | None = None
        content_length = 0
        expect_continue = False
        # The limit on a head applies to what QPACK decoded too: a small
        # HEADERS frame can name a large dynamic-table entry many times.
        size = 0
        for name, value in fields:
            size += len(name) + len(value) + 4
            if name[:1] == b":":
                if name == b":method":
                    method = value
                elif name == b":path":
                    path = value
                elif name == b":scheme":
                    scheme = value
                elif name == b":authority":
                    authority = value
                else:  # :protocol (extended CONNECT): not served over HTTP/3
                    method = b"CONNECT"
                continue
            if name == b"host":
                host = value
                continue
            if name == b"content-length":
                content_length = int(value)  # aioquic checked it is a number
            elif name == b"expect" and value.lower() == b"100-continue":
                expect_continue = True
            headers.append((name, value))
        if size > self.ctx.max_head_size:
            self._refuse(stream_id, 431, ended=ended)
            return
        if method == b"CONNECT":
            self._refuse(stream_id, 501, ended=ended)
            return
        if method is None or not path or scheme is None:
            self._refuse(stream_id, 400, ended=ended)
            return
        authority = authority or host
        if authority:
            headers.insert(0, (b"host", authority))
        ctx = self.ctx
        if ctx.max_body and content_length > ctx.max_body:
            self._refuse(stream_id, 413, ended=ended)
            return
        if self.over_limit:
            if len(ctx.connections) > ctx.limit_concurrency:
                self._refuse(stream_id, 503, ended=ended)
                return
            self.over_limit = False
        if not self.handshake_done and method not in _SAFE_METHODS:
            # Early data may be replayed by an attacker: only safe methods
            # are served from it (RFC 8470); the client retries after the
            # handshake.
            self._refuse(stream_id, 425, ended=ended)
            return
        if not self.handshake_done:
            headers.append((b"early-data", b"1"))
        request = Request(method, path, b"3", headers, STREAM, content_length, True,
                          expect_continue=expect_continue and not ended, trailers=True, stream_id=stream_id)
        stream = HttpStream(self, ctx, build_scope(ctx, self._connection_info(), request), request)  # type: ignore[arg-type]
        self.streams[stream_id] = stream
        if ended:
            stream.feed_end()
        stream.start()

    def _connection_info(self) -> ConnectionInfo:
        """The scope's fixed fields; made again if the client moved to
        another address (connection migration)."""
        info = self.info
        addr = self.addr
        client = (str(addr[0]), int(addr[1]))
        if info is None or info.client != client:
            info = self.info = ConnectionInfo(self.ctx, client, self.endpoint.server_address,
                                              self.endpoint.tls_info, pathsend=True)
        return info

    def _too_large(self, stream: HttpStream) -> None:
        """The body passed ``max_request_body_size``: 413 if nothing was sent
        yet, else the response is cut; the app sees ``http.disconnect``."""
        stream_id = stream.stream_id
        if not stream.headers_sent:
            stream.send_error(413)
            self._abandon(stream_id, ended=False)
        else:
            self._reset(stream_id, ErrorCode.H3_REQUEST_REJECTED, ended=False)
        stream.on_disconnect()

    # -- StreamOwner ---------------------------------------------------------------------

    def send_head(self, stream: HttpStream, status: int, headers: list[tuple[bytes, bytes]], body: bytes,
                  more: bool, trailers: bool) -> bool:
        stream_id = self._writable(stream)
        bodiless = stream.is_head or status in _NO_BODY_STATUS
        fields = self._response_fields(status, headers, body, more or trailers, bodiless)
        end = not more and not trailers
        h3 = self.h3
        if body and not bodiless:
            h3.send_headers(stream_id, fields, False)
            h3.send_data(stream_id, body, end)
        else:
            h3.send_headers(stream_id, fields, end)
        self.endpoint.schedule(self)
        return more and self.quic.send_buffered(stream_id) > SEND_HIGH_WATER

    def send_body(self, stream: HttpStream, body: bytes, more: bool) -> bool:
        stream_id = self._writable(stream)
        end = not more and not stream.trailers_expected
        if stream.is_head or stream.status in _NO_BODY_STATUS:
            body = b""
        if body or end:
            self.h3.send_data(stream_id, body, end)
            self.endpoint.schedule(self)
        return more and self.quic.send_buffered(stream_id) > SEND_HIGH_WATER

    def send_trailers(self, stream: HttpStream, trailers: list[tuple[bytes, bytes]]) -> None:
        stream_id = self._writable(stream)
        fields = [(name, value) for name, value in trailers if name not in _CONNECTION_FIELDS]
        try:
            check_fields(fields)
        except ValueError as exc:
            raise LocalProtocolError(str(exc)) from None
        self.h3.send_headers(stream_id, fields, True)
        self.endpoint.schedule(self)

    def send_continue(self, stream: HttpStream) -> None:
        if not self.closed and stream.stream_id not in self.send_closed:
            self.h3.send_headers(stream.stream_id, [(b":status", b"100")])
            self.endpoint.schedule(self)

    def send_error(self, stream: HttpStream, status: int) -> None:
        if not self.closed and stream.stream_id not in self.send_closed:
            self._plain_response(stream.stream_id, status)

    def body_consumed(self, stream: HttpStream, size: int) -> None:
        self.quic.release(stream.stream_id, size)
        self.endpoint.schedule(self)

    async def drain(self, stream: HttpStream) -> None:
        stream_id = stream.stream_id
        if self.closed or stream_id in self.send_closed or self.quic.send_buffered(stream_id) <= SEND_LOW_WATER:
            return
        waiter = self.drain_waiters[stream_id] = self.loop.create_future()
        try:
            await waiter
        finally:
            self.drain_waiters.pop(stream_id, None)

    async def send_file(self, stream: HttpStream, status: int, headers: list[tuple[bytes, bytes]],
                        file: BinaryIO, offset: int, count: int) -> None:
        """``http.response.pathsend``: the head, then the file in DATA frames
        read in a thread (QUIC has no ``sendfile``), with the same
        backpressure as any body."""
        stream_id = self._writable(stream)
        bodiless = stream.is_head or status in _NO_BODY_STATUS
        h3 = self.h3
        h3.send_headers(stream_id, self._response_fields(status, headers, b"", True, bodiless),
                        bodiless or not count)
        self.endpoint.schedule(self)
        if bodiless or not count:
            return
        loop = self.loop
        left = count
        while left:
            data = await loop.run_in_executor(None, os.pread, file.fileno(), min(FILE_CHUNK, left), offset)
            if not data:
                raise OSError("the file shrank while it was being sent")
            stream_id = self._writable(stream)
            offset += len(data)
            left -= len(data)
            h3.send_data(stream_id, data, not left)
            self.ctx.copied_file_bytes += len(data)
            self.endpoint.schedule(self)
            if left and self.quic.send_buffered(stream_id) > SEND_HIGH_WATER:
                await self.drain(stream)

    def abort(self, stream: HttpStream | None = None) -> None:
        """End one stream abruptly (its response cannot be finished), or,
        without a stream (a forced stop), the whole connection."""
        if stream is not None:
            self._reset(stream.stream_id, ErrorCode.H3_INTERNAL_ERROR, ended=stream.body_complete)
            stream.on_disconnect()
            return
        for open_stream in list(self.streams.values()):
            if open_stream.task is not None:
                open_stream.task.cancel()
        self.close(ErrorCode.H3_NO_ERROR, "server stopping")

    def stream_done(self, stream: HttpStream) -> None:
        stream_id = stream.stream_id
        self.streams.pop(stream_id, None)
        self.send_closed.discard(stream_id)
        self.quic.forget(stream_id)
        self._wake_writer(stream_id)
        if self.closed:
            return
        if not stream.body_complete and stream_id not in self.ignored:
            # Answered before the whole request arrived: ask the client to
            # stop sending it (RFC 9114 section 4.1), and drop what still comes.
            self._abandon(stream_id, ended=False, code=ErrorCode.H3_NO_ERROR)
        self.endpoint.schedule(self)
        if self.goaway_id is not None:
            self._close_when_settled()

    # -- writing --------------------------------------------------------------------------

    def _writable(self, stream: HttpStream) -> int:
        stream_id = stream.stream_id
        if self.closed or stream_id in self.send_closed:
            stream.on_disconnect()
            raise ClientDisconnected("the client has disconnected")
        return stream_id

    def _response_fields(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, more: bool,
                         bodiless: bool) -> list[tuple[bytes, bytes]]:
        has_length = has_server = has_date = False
        out: list[tuple[bytes, bytes]] = [(b":status", b"%d" % status)]
        app: list[tuple[bytes, bytes]] = []
        for name, value in headers:
            if name in _CONNECTION_FIELDS:
                continue
            if name == b"content-length":
                has_length = True
            elif name == b"server":
                has_server = True
            elif name == b"date":
                has_date = True
            app.append((name, value))
        try:
            check_fields(app)
        except ValueError as exc:
            raise LocalProtocolError(str(exc)) from None
        for name, value in self.endpoint.default_headers():
            if not ((name == b"server" and has_server) or (name == b"date" and has_date)):
                out.append((name, value))
        out.extend(app)
        if not has_length and not more and not (bodiless and status in _NO_BODY_STATUS):
            out.append((b"content-length", b"%d" % len(body)))
        return out

    def _plain_response(self, stream_id: int, status: int) -> None:
        """pounce's own short answer (an error), which ends the stream."""
        body = (reason(status) or b"Error")
        fields = [(b":status", b"%d" % status), *self.endpoint.default_headers(),
                  (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))]
        h3 = self.h3
        try:
            h3.send_headers(stream_id, fields, False)
            h3.send_data(stream_id, body, True)
        except Exception as exc:  # noqa: BLE001 - a stream already ended cannot take it
            logger.debug("could not answer %d on stream %d: %s", status, stream_id, exc)
        self.endpoint.schedule(self)

    def _refuse(self, stream_id: int, status: int, *, ended: bool) -> None:
        """Answer a request the app never sees (``ended``: its body is
        complete; if not, the rest is not wanted)."""
        self._plain_response(stream_id, status)
        self._abandon(stream_id, ended=ended, code=ErrorCode.H3_NO_ERROR)
        logger.debug("refused HTTP/3 request from %s on stream %d: %d", self.addr, stream_id, status)

    def _reset(self, stream_id: int, code: int, *, ended: bool) -> None:
        """RESET_STREAM: the response ends abruptly."""
        if stream_id in self.streams:
            self.send_closed.add(stream_id)
        try:
            self.quic.reset_stream(stream_id, code)
        except Exception:  # noqa: BLE001 - finished or unknown: nothing to reset
            pass
        self._abandon(stream_id, ended=ended, code=code)

    def _abandon(self, stream_id: int, *, ended: bool, code: int = ErrorCode.H3_REQUEST_REJECTED) -> None:
        """Nothing more of this request is read: HTTP/3 forgets the stream
        and, unless the request is complete, STOP_SENDING asks the client to
        stop while what still arrives is dropped (its window kept open)."""
        self.h3.discard(stream_id)
        self.quic.forget(stream_id)
        if not ended and stream_id not in self.ignored:
            self.ignored.add(stream_id)
            try:
                self.quic.stop_stream(stream_id, code)
            except ValueError:
                pass  # the stream is gone already
        self.endpoint.schedule(self)

    def _wake_writer(self, stream_id: int) -> None:
        waiter = self.drain_waiters.get(stream_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_writers(self) -> None:
        """After acknowledgements arrived: let streams that waited for the
        peer send again."""
        quic = self.quic
        for stream_id, waiter in list(self.drain_waiters.items()):
            if not waiter.done() and (self.closed or quic.send_buffered(stream_id) <= SEND_LOW_WATER):
                waiter.set_result(None)

    def transmit(self) -> None:
        """Send what aioquic has queued and re-arm its timer."""
        loop = self.loop
        send = self.endpoint.send
        for data, addr in self.quic.datagrams_to_send(now=loop.time()):
            send(data, addr)
        timer_at = self.quic.get_timer()
        if timer_at != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if timer_at is not None:
                self._timer = loop.call_at(timer_at, self.handle_timer)
            self._timer_at = timer_at

    # -- closing --------------------------------------------------------------------------

    def shutdown(self) -> None:
        """The worker's drain, called twice. First: GOAWAY, so the client
        sends new requests elsewhere while the ones in flight finish.
        Second (the drain's grace is over): close if no request is left."""
        if self.closed:
            return
        if self.goaway_id is None:
            self.goaway_id = self.next_stream_id
            self.h3.send_goaway(self.goaway_id)
            self.endpoint.schedule(self)
        self._close_when_settled()

    def _close_when_settled(self) -> None:
        """During the drain: close once no request is left and the peer has
        acknowledged every response (CONNECTION_CLOSE would discard what is
        still unacknowledged)."""
        if (self.ctx.shutting_down and not self.streams and not self.closed
                and not self.quic.responses_unacknowledged()):
            self.close(ErrorCode.H3_NO_ERROR, "server shutting down")

    def close(self, code: int = ErrorCode.H3_NO_ERROR, why: str = "") -> None:
        """CONNECTION_CLOSE now; the connection leaves the worker's set (the
        endpoint keeps answering its stray packets until aioquic is done)."""
        if self.closed:
            return
        self.closed = True
        self.ctx.connections.discard(self)
        self.endpoint.open.discard(self)
        for stream in list(self.streams.values()):
            stream.on_disconnect()
        self.quic.close(error_code=code, reason_phrase=why)
        self.transmit()
        self._wake_writers()

    def _handshake_timeout(self) -> None:
        self._handshake_timer = None
        if not self.handshake_done and not self.closed:
            self.close(ErrorCode.H3_NO_ERROR, "handshake timeout")

    def _terminated(self) -> None:
        """aioquic is done with the connection (closed by either side, or
        idle): every request left sees ``http.disconnect``."""
        self.closed = True
        self.ctx.connections.discard(self)
        for stream in list(self.streams.values()):
            stream.on_disconnect()
        for timer in (self._timer, self._handshake_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._handshake_timer = None
        self._wake_writers()
        self.endpoint.forget(self)
