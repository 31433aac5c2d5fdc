"""The sending half of the HTTP/2 connection (:mod:`.http2`): response
heads, bodies held behind the flow-control windows, trailers.

Body the windows do not allow yet waits in its stream's queue
(:meth:`H2Sender.pending` says how much) and goes out as WINDOW_UPDATEs
arrive (:meth:`H2Sender._on_window`), the oldest stream first when it is the
connection's window that opened. Kept apart from the receiving half so each
reads on its own; :class:`~.http2.H2Connection` is both.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import h2.connection
import h2.exceptions

from pounce.core.protocol.events import LocalProtocolError, Request
from pounce.core.protocol.http2_request import CONNECTION_SPECIFIC
from pounce.core.protocol.responses import DefaultHeaders, check_fields

if TYPE_CHECKING:
    from pounce.core.protocol.http2_limits import FloodGuard

__all__ = ["H2Sender", "StreamClosed", "StreamState"]

# Hop-by-hop fields an app written for HTTP/1.1 may set; HTTP/2 forbids
# them (RFC 9113 8.2.2), so they are dropped from responses rather than refused.
_CONNECTION_SPECIFIC = CONNECTION_SPECIFIC
_NO_BODY_STATUS = frozenset({204, 304})
# Bytes a field value must not hold, deleted to compare lengths: one C call
# where ``b"\r" in value`` is three, each raising and clearing a TypeError
# inside CPython (bytes ``in`` tries the operand as an int first).
_VALUE_BAD = b"\r\n\0"
STATUS = {status: b"%d" % status for status in range(100, 1000)}
_STATUS = STATUS
_VALID_NAMES: dict[bytes, bool] = {}


class StreamClosed(Exception):
    """The stream (or the connection) can no longer carry a response: it was
    reset, or h2 closed it. The caller treats it as the client gone."""


class StreamState:
    """One stream's state on the server side."""

    __slots__ = ("id", "chunks", "offset", "size", "end", "trailers", "sent_end", "remote_ended",
                 "bodiless", "remaining", "started", "request")

    def __init__(self, stream_id: int, request: Request) -> None:
        self.id = stream_id
        self.request = request
        self.chunks: deque[bytes] = deque()  # body the windows do not allow yet
        self.offset = 0  # bytes of chunks[0] already sent
        self.size = 0  # bytes queued
        self.end = False  # the body ends after the queue (and trailers)
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.sent_end = False
        self.remote_ended = False
        self.bodiless = False  # HEAD, 204, 304
        self.remaining = -1  # Content-Length left to send (-1: none declared)
        self.started = False  # response head sent


class H2Sender:
    """Response calls of one connection; the attributes are the connection's."""

    h2: h2.connection.H2Connection
    streams: dict[int, StreamState]
    defaults: DefaultHeaders
    guard: FloodGuard
    closed: bool
    goaway_wanted: bool

    def goaway(self, now: bool = False) -> None:  # (the connection's)
        raise NotImplementedError

    def response(self, stream_id: int, status: int, headers: list[tuple[bytes, bytes]], body: bytes,
                 more: bool, trailers: bool = False) -> None:
        """The response head, with the first body piece. ``headers`` are the
        app's (lowercase names): HTTP/1.1-only fields are dropped, the
        default headers go first unless the app set Server or Date itself,
        Content-Length is added for a body sent whole. Raises
        LocalProtocolError for a field that cannot be sent."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.started or self.closed:
            return  # reset meanwhile: the caller sees the reset event
        out = [(b":status", _STATUS[status])]
        has_server = has_date = False
        length = -1
        fields: list[tuple[bytes, bytes]] = []
        for name, value in headers:
            if name in _CONNECTION_SPECIFIC:
                continue
            if name not in _VALID_NAMES:
                _check_field(name, value)
            elif len(value.translate(None, _VALUE_BAD)) != len(value):
                raise LocalProtocolError(f"illegal header value {value!r}")
            if name == b"server":
                has_server = True
            elif name == b"date":
                has_date = True
            elif name == b"content-length":
                if not value.isdigit():
                    raise LocalProtocolError("bad Content-Length")
                length = int(value)
            fields.append((name, value))
        for pair in self.defaults.headers:
            if not ((has_server and pair[0] == b"server") or (has_date and pair[0] == b"date")):
                out.append(pair)
        out += fields
        stream.bodiless = status in _NO_BODY_STATUS or stream.request.method == b"HEAD"
        if length < 0 and not more and not trailers and status not in _NO_BODY_STATUS:
            length = len(body)
            out.append((b"content-length", b"%d" % length))  # (for HEAD too: the body's length)
        stream.remaining = length if not stream.bodiless else -1
        stream.started = True
        end = not more and not trailers and (not body or stream.bodiless)
        try:
            self.h2.send_headers(stream_id, out, end_stream=end)
        except h2.exceptions.ProtocolError:
            self._lost(stream_id)
        if end:
            stream.sent_end = True
            self._forget_if_done(stream)
        else:
            self.body(stream_id, body, more or trailers)

    def body(self, stream_id: int, data: bytes, more: bool) -> None:
        """A body piece; without ``more`` the end (with the trailers, if any,
        given to :meth:`trailers` instead). Goes out as far as the windows
        allow; the rest waits (:meth:`pending`)."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.end or self.closed:
            return
        if data and not stream.bodiless:
            remaining = stream.remaining
            if remaining >= 0:
                if len(data) > remaining:
                    raise LocalProtocolError("Too much data for declared Content-Length")
                stream.remaining = remaining - len(data)
            stream.chunks.append(data)
            stream.size += len(data)
        if not more:
            if stream.remaining > 0:
                raise LocalProtocolError("Too little data for declared Content-Length")
            stream.end = True
        try:
            self._flush(stream)
        except h2.exceptions.ProtocolError:
            self._lost(stream_id)

    def trailers(self, stream_id: int, fields: list[tuple[bytes, bytes]]) -> None:
        """End the body with trailer fields (HEADERS with END_STREAM)."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.end or self.closed:
            return
        fields = [(n, v) for n, v in fields if n not in _CONNECTION_SPECIFIC and n[:1] != b":"]
        try:
            check_fields(fields)
        except ValueError as exc:
            raise LocalProtocolError(str(exc)) from None
        stream.trailers = fields
        stream.end = True
        try:
            self._flush(stream)
        except h2.exceptions.ProtocolError:
            self._lost(stream_id)

    def informational(self, stream_id: int, status: int = 100) -> None:
        """An interim response (``100 Continue``)."""
        if stream_id in self.streams and not self.closed:
            try:
                self.h2.send_headers(stream_id, [(b":status", _STATUS[status])])
            except h2.exceptions.ProtocolError:
                self._lost(stream_id)

    def pending(self, stream_id: int) -> int:
        """Bytes of body queued behind the flow-control windows."""
        stream = self.streams.get(stream_id)
        return stream.size if stream is not None else 0

    def _flush(self, stream: StreamState) -> None:
        conn = self.h2
        stream_id = stream.id
        chunks = stream.chunks
        guard = self.guard
        while chunks:
            window = conn.local_flow_control_window(stream_id)
            if window <= 0:
                return
            frame = conn.max_outbound_frame_size
            if window > frame:
                window = frame
            chunk = chunks[0]
            offset = stream.offset
            left = len(chunk) - offset
            if left <= window:
                piece = chunk if not offset else chunk[offset:]
                chunks.popleft()
                stream.offset = 0
            else:
                piece = memoryview(chunk)[offset:offset + window].tobytes()
                stream.offset = offset + window
            stream.size -= len(piece)
            last = not chunks and stream.end and stream.trailers is None
            conn.send_data(stream_id, piece, end_stream=last)
            guard.data_sent()
            if last:
                stream.sent_end = True
                self._forget_if_done(stream)
                return
        if stream.end and not stream.sent_end:
            stream.sent_end = True
            if stream.trailers is not None:
                conn.send_headers(stream_id, stream.trailers, end_stream=True)
            else:
                conn.end_stream(stream_id)
            self._forget_if_done(stream)

    def _on_window(self, stream_id: int) -> None:
        """A window opened: send what waited behind it (the connection's:
        every stream, oldest first)."""
        streams = [self.streams.get(stream_id)] if stream_id else list(self.streams.values())
        for stream in streams:
            if stream is not None and stream.chunks:
                try:
                    self._flush(stream)
                except h2.exceptions.ProtocolError:
                    self.streams.pop(stream.id, None)  # the app hears it at its next send

    def _lost(self, stream_id: int) -> None:
        """h2 refused to send on the stream (it closed it): the stream is gone."""
        self.streams.pop(stream_id, None)
        if self.goaway_wanted and not self.streams:
            self.goaway()
        raise StreamClosed(f"stream {stream_id} is closed")

    def _forget_if_done(self, stream: StreamState) -> None:
        if stream.sent_end and stream.remote_ended:
            if self.streams.pop(stream.id, None) is not None:
                self.guard.stream_completed()
                if self.goaway_wanted and not self.streams:
                    self.goaway()


def _check_field(name: bytes, value: bytes) -> None:
    try:
        check_fields([(name, value)])
    except ValueError as exc:
        raise LocalProtocolError(str(exc)) from None
    if name.lower() != name:
        raise LocalProtocolError(f"header name {name!r} is not lowercase")
    if len(_VALID_NAMES) < 512:
        _VALID_NAMES[name] = True
