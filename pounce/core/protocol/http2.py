"""An HTTP/2 server connection without I/O, on the ``h2`` library: bytes in,
events out; response calls in, bytes out.

The events are the ones HTTP/1.1 emits (:mod:`.events`), with the stream id
set: :class:`~.events.Request` (``http_version`` ``b"2"``, framing
``STREAM``), :class:`~.events.Data`, :class:`~.events.EndOfMessage`,
:class:`~.events.StreamReset`, and :data:`~.events.CONNECTION_CLOSED` when
the connection is over (the peer's GOAWAY with an error, or an error of its
own: :attr:`H2Connection.error` says which). Whatever the caller must write
is in :meth:`H2Connection.data_to_send`, after every call.

What h2 checks (and turns into GOAWAY): the preface, frame sizes, stream id
order, pseudo-headers, connection-specific and uppercase header fields,
Content-Length against the body, CONTINUATION backlogs, the HPACK-decoded
header list size. What is checked here on top: the request target (a path
of visible ASCII, or ``*`` for OPTIONS), plain CONNECT (405) and extended
CONNECT for anything but WebSocket (501), and the flood budgets of
:mod:`.http2_limits`.

Flow control, both ways:

- Receiving: a stream's window is re-opened only when the caller says the
  app consumed the bytes (:meth:`H2Connection.ack`), so a slow app stops its
  client instead of piling up body in memory. The connection window is
  opened wide enough for every stream's window at once, so one stalled
  stream never holds back the others.
- Sending: body the windows do not allow yet waits in the stream's queue
  (:meth:`H2Connection.pending` says how much) and goes out as WINDOW_UPDATEs
  arrive; the caller makes the app wait while anything is queued.

Graceful end (:meth:`H2Connection.goaway`): a GOAWAY naming the last stream
taken; streams up to it finish, later ones are refused (REFUSED_STREAM, so
the client retries them elsewhere). h2's own ``close_connection`` would stop
every stream at once, so this GOAWAY is written here.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from pounce.core.protocol.events import (
    CONNECTION_CLOSED,
    STREAM,
    Data,
    EndOfMessage,
    Request,
    StreamReset,
)
from pounce.core.protocol.http2_hpack import CachingDecoder, CachingEncoder
from pounce.core.protocol.http2_limits import FloodGuard, H2Settings
from pounce.core.protocol.http2_request import CONNECTION_SPECIFIC, Malformed, check_trailers, read_request
from pounce.core.protocol.http2_send import STATUS, H2Sender, StreamClosed, StreamState
from pounce.core.protocol.responses import DefaultHeaders

__all__ = ["PREFACE", "H2Connection", "H2Settings", "ErrorCodes", "StreamClosed"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Fields of an HTTP/1.1 upgrade request that HTTP/2 has no place for.
_CONNECTION_SPECIFIC = CONNECTION_SPECIFIC
_STATUS = STATUS
_MAX_WINDOW = 2**31 - 1
_EV = h2.events


class H2Connection(H2Sender):
    """One client connection, server side (see the module docstring).

    ``defaults`` are the worker's default headers (read at each response);
    ``clock`` drives the flood budgets (tests give a fake one).
    """

    def __init__(self, settings: H2Settings | None = None, *, defaults: DefaultHeaders | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings = settings or H2Settings()
        self.defaults = defaults or DefaultHeaders(server=False, date=False)
        config = h2.config.H2Configuration(client_side=False, header_encoding=None,
                                           validate_inbound_headers=False,  # (done in _request)
                                           validate_outbound_headers=False,
                                           normalize_outbound_headers=False)
        conn = self.h2 = h2.connection.H2Connection(config=config)
        values = {
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: settings.max_concurrent_streams,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: settings.initial_window_size,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: settings.max_frame_size,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: settings.max_header_list_size,
        }
        if settings.connect_protocol:
            values[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL] = 1
        conn.local_settings = h2.settings.Settings(client=False, initial_values=values)
        # (h2 reads these from the settings only when the peer acknowledges a
        # change; these are the first settings, so they apply from the start.)
        conn.max_inbound_frame_size = settings.max_frame_size
        # Repeated header blocks are coded once (see http2_hpack).
        conn.encoder = CachingEncoder(conn.encoder)  # type: ignore[assignment]
        conn.decoder = CachingDecoder(conn.decoder)  # type: ignore[assignment]
        conn.decoder.max_header_list_size = settings.max_header_list_size
        self.guard = FloodGuard(settings, clock)
        self.streams: dict[int, StreamState] = {}
        self.closed = False  # nothing more is read; close once the output is written
        self.error = ""  # why the connection ended on an error
        self.last_stream_id = 0  # after goaway(): streams above are refused
        self.goaway_sent = False
        self.goaway_wanted = False  # a GOAWAY goes out once no stream is in flight
        self.goaway_received = False
        self.requests = 0
        self._out: list[bytes] = []

    # -- starting ---------------------------------------------------------------

    def initiate(self) -> None:
        """The server preface (SETTINGS) and a connection window as wide as
        every stream's window together."""
        conn = self.h2
        conn.initiate_connection()
        self._widen_connection_window()

    def upgrade(self, settings_header: bytes, request: Request) -> list[object]:
        """Take over from an HTTP/1.1 ``Upgrade: h2c`` request (RFC 7540 3.2),
        which becomes stream 1, complete. Raises ValueError for an unusable
        ``HTTP2-Settings`` header (the request is then answered on HTTP/1.1)."""
        value = settings_header.strip()
        try:
            raw = base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))
            self.h2.initiate_upgrade_connection(base64.urlsafe_b64encode(raw))
        except (binascii.Error, ValueError, h2.exceptions.ProtocolError) as exc:
            raise ValueError(f"bad HTTP2-Settings header: {exc}") from None
        self._widen_connection_window()
        headers = [(n, v) for n, v in request.headers
                   if n not in _CONNECTION_SPECIFIC and n != b"http2-settings" and n != b"te"]
        upgraded = Request(request.method, request.target, b"2", headers, STREAM, 0, True,
                           trailers=request.trailers, stream_id=1)
        stream = self.streams[1] = StreamState(1, upgraded)
        stream.remote_ended = True
        self.requests = 1
        return [upgraded, EndOfMessage(stream_id=1)]

    def _widen_connection_window(self) -> None:
        want = min(_MAX_WINDOW, self.settings.max_concurrent_streams * self.settings.initial_window_size)
        if want > 65535:
            self.h2.increment_flow_control_window(want - 65535)

    # -- request side -----------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[object]:
        if self.closed:
            return []
        try:
            received = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            # h2 has queued its GOAWAY.
            return self._failed(f"protocol error: {exc or type(exc).__name__}")
        events: list[object] = []
        guard = self.guard
        for event in received:
            kind = type(event)
            if kind is _EV.RequestReceived:
                self._on_request(event, events)  # type: ignore[arg-type]
            elif kind is _EV.DataReceived:
                stream = self.streams.get(event.stream_id)  # type: ignore[attr-defined]
                data = event.data  # type: ignore[attr-defined]
                padding = event.flow_controlled_length - len(data)  # type: ignore[attr-defined]
                if padding:
                    self.h2.acknowledge_received_data(padding, event.stream_id)  # type: ignore[attr-defined]
                if not data:
                    if event.stream_ended is None and not guard.control("empty DATA"):  # type: ignore[attr-defined]
                        return self._calm(events)
                elif stream is not None:
                    events.append(Data(data, event.stream_id))  # type: ignore[attr-defined]
                else:
                    # A stream answered already (or refused): its body counts
                    # against the connection window all the same.
                    self.h2.acknowledge_received_data(len(data), event.stream_id)  # type: ignore[attr-defined]
            elif kind is _EV.StreamEnded:
                stream = self.streams.get(event.stream_id)  # type: ignore[attr-defined]
                if stream is not None and not stream.remote_ended:
                    stream.remote_ended = True
                    events.append(EndOfMessage(stream_id=stream.id))
                    self._forget_if_done(stream)
            elif kind is _EV.WindowUpdated:
                if not guard.control("WINDOW_UPDATE"):
                    return self._calm(events)
                self._on_window(event.stream_id)  # type: ignore[attr-defined]
            elif kind is _EV.StreamReset:
                stream = self.streams.pop(event.stream_id, None)  # type: ignore[attr-defined]
                if self.goaway_wanted and not self.streams:
                    self.goaway()
                if stream is not None:
                    events.append(StreamReset(stream.id, int(event.error_code)))  # type: ignore[attr-defined]
                    if not guard.reset("RST_STREAM" if event.remote_reset else "stream errors"):  # type: ignore[attr-defined]
                        return self._calm(events)
            elif kind is _EV.TrailersReceived:
                stream = self.streams.get(event.stream_id)  # type: ignore[attr-defined]
                if stream is not None:
                    fields = list(event.headers)  # type: ignore[attr-defined]
                    try:
                        check_trailers(fields)
                    except Malformed as exc:
                        events.append(StreamReset(stream.id, ErrorCodes.PROTOCOL_ERROR))
                        self._malformed(stream.id, str(exc))
                        if self.closed:
                            return self._calm(events)
                        continue
                    stream.remote_ended = True
                    events.append(EndOfMessage(fields, stream.id))
                    self._forget_if_done(stream)
                # (h2 reports a StreamEnded after the trailers too: skipped, the stream is known ended.)
            elif kind is _EV.RemoteSettingsChanged:
                if not guard.control("SETTINGS"):
                    return self._calm(events)
                if h2.settings.SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:  # type: ignore[attr-defined]
                    self._on_window(0)
            elif kind is _EV.PingReceived or kind is _EV.PingAckReceived:
                if not guard.control("PING"):
                    return self._calm(events)
            elif kind is _EV.PriorityUpdated or kind is _EV.UnknownFrameReceived:
                if not guard.control("PRIORITY" if kind is _EV.PriorityUpdated else "unknown"):
                    return self._calm(events)
            elif kind is _EV.ConnectionTerminated:
                self.goaway_received = True
                if event.error_code or not _reopen(self.h2):  # type: ignore[attr-defined]
                    return self._failed(f"client sent GOAWAY {event.error_code!r}", events)  # type: ignore[attr-defined]
                # A graceful GOAWAY from the client: the streams it opened
                # finish, then the connection ends.
                self.goaway()
        return events

    def _on_request(self, event: h2.events.RequestReceived, events: list[object]) -> None:
        stream_id = event.stream_id
        if event.priority_updated is not None:
            self.guard.controls.refund()  # priority inside HEADERS is part of a request
        if self.goaway_sent and stream_id > self.last_stream_id:
            self._reset(stream_id, ErrorCodes.REFUSED_STREAM)
            return
        request = self._request(event)
        if request is None:
            return
        self.requests += 1
        stream = self.streams[stream_id] = StreamState(stream_id, request)
        events.append(request)
        if event.stream_ended is not None:
            stream.remote_ended = True
            events.append(EndOfMessage(stream_id=stream_id))
        max_requests = self.settings.max_requests
        if max_requests and self.requests >= max_requests:
            # Between streams if the client leaves a gap; else before it has
            # sent another window of streams.
            self.goaway(now=self.requests >= max_requests + self.settings.max_concurrent_streams)

    def _request(self, event: h2.events.RequestReceived) -> Request | None:
        """The protocol layer's request for a HEADERS block, or None when it
        was answered here (bad target: 400, CONNECT: 405, extended CONNECT
        for anything but WebSocket: 501) or reset as malformed (RFC 9113
        8.1.1: a stream error, drawn on the reset budget)."""
        try:
            request = read_request(event.headers, event.stream_id, self.settings.connect_protocol)
        except Malformed as exc:
            self._malformed(event.stream_id, str(exc))
            return None
        if type(request) is int:
            self._refuse(event.stream_id, request)
            return None
        return request  # type: ignore[return-value]

    def _malformed(self, stream_id: int, reason: str) -> None:
        """A malformed request or trailer block: RST_STREAM PROTOCOL_ERROR."""
        self.streams.pop(stream_id, None)
        self._reset(stream_id, ErrorCodes.PROTOCOL_ERROR)
        if not self.guard.reset(f"malformed requests: {reason}"):
            self._calm([])

    def _refuse(self, stream_id: int, status: int) -> None:
        """Answer a request pounce will not pass on, without any app."""
        body = b"%d %s\n" % (status, {400: b"Bad Request", 405: b"Method Not Allowed",
                                      501: b"Not Implemented"}[status])
        conn = self.h2
        headers = [(b":status", _STATUS[status]), *self.defaults.headers,
                   (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))]
        try:
            conn.send_headers(stream_id, headers)
            conn.send_data(stream_id, body, end_stream=True)
        except h2.exceptions.ProtocolError:
            return
        if self.h2.streams.get(stream_id) is not None and self.h2.streams[stream_id].open:
            # The rest of the request is not wanted.
            self._reset(stream_id, ErrorCodes.NO_ERROR)
        if not self.guard.reset("refused requests"):
            self._calm([])

    # -- flood control -------------------------------------------------------------

    def _calm(self, events: list[object]) -> list[object]:
        return self._failed(self.guard.reason, events, ErrorCodes.ENHANCE_YOUR_CALM)

    def _failed(self, reason: str, events: list[object] | None = None,
                code: ErrorCodes | None = None) -> list[object]:
        """The connection ends on an error: a GOAWAY with ``code`` (h2 has
        queued its own when ``code`` is None), then nothing more is read."""
        if code is not None and not self.closed:
            try:
                self.h2.close_connection(code, last_stream_id=self.h2.highest_inbound_stream_id)
            except h2.exceptions.ProtocolError:
                pass
        self.closed = True
        self.error = reason
        self.streams.clear()
        out = events if events is not None else []
        out.append(CONNECTION_CLOSED)
        return out

    # -- the caller's controls ------------------------------------------------------------

    def ack(self, stream_id: int, size: int) -> None:
        """The app consumed ``size`` bytes of the stream's body: open its
        window again (h2 sends WINDOW_UPDATE once enough has been consumed)."""
        if size and not self.closed:
            try:
                self.h2.acknowledge_received_data(size, stream_id)
            except h2.exceptions.ProtocolError:
                pass

    def reset(self, stream_id: int, code: int = ErrorCodes.INTERNAL_ERROR, *, counted: bool = False) -> None:
        """End a stream abruptly (RST_STREAM). ``counted``: the client caused
        it (a body over the limit, a stream over the concurrency cap), so it
        draws on the reset budget."""
        if self.closed:
            return
        self.streams.pop(stream_id, None)
        self._reset(stream_id, code)
        if self.goaway_wanted and not self.streams:
            self.goaway()
        if counted and not self.guard.reset("refused streams"):
            self._calm([])

    def refuse(self, stream_id: int) -> None:
        """A stream the server will not take now (REFUSED_STREAM: the client
        may retry it)."""
        self.reset(stream_id, ErrorCodes.REFUSED_STREAM, counted=not self.goaway_sent)

    def _reset(self, stream_id: int, code: int) -> None:
        try:
            self.h2.reset_stream(stream_id, code)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass

    def goaway(self, now: bool = False) -> None:
        """Graceful end: GOAWAY naming the last stream taken; the streams up
        to it finish, later ones are refused.

        Sent when no stream is in flight, unless ``now``: clients built on
        h2 (httpx among them) cannot read a response that arrives after a
        GOAWAY (python-hyper/h2 #1181), so until then the connection goes on
        serving the streams it gets, and the GOAWAY goes out between them.
        """
        if self.goaway_sent or self.closed:
            return
        self.goaway_wanted = True
        if now or not self.streams:
            self.goaway_sent = True
            self.last_stream_id = self.h2.highest_inbound_stream_id
            self._out.append(self.h2.data_to_send())
            self._out.append(GoAwayFrame(0, last_stream_id=self.last_stream_id, error_code=0).serialize())

    @property
    def idle(self) -> bool:
        """No stream is open (after a GOAWAY: the connection may close)."""
        return not self.streams

    def data_to_send(self) -> bytes:
        out = self.h2.data_to_send()
        if self._out:
            self._out.append(out)
            out = b"".join(self._out)
            self._out.clear()
        return out


def _reopen(conn: h2.connection.H2Connection) -> bool:
    """Undo h2's reaction to a client's graceful GOAWAY.

    h2 closes its whole connection state machine when it receives a GOAWAY
    (python-hyper/h2 #1181), so nothing more could be sent, not even the
    responses to the streams the GOAWAY lets finish (RFC 9113 6.8). The one
    attribute set back here is h2's own state; if h2 ever moves it, this
    says False and the connection ends as h2 wants
    (tests/integration/test_http2_streams.py fails loudly then).
    """
    machine = getattr(conn, "state_machine", None)
    closed = getattr(h2.connection.ConnectionState, "CLOSED", None)
    if machine is None or closed is None or getattr(machine, "state", None) is not closed:
        return False
    machine.state = h2.connection.ConnectionState.SERVER_OPEN
    return True
