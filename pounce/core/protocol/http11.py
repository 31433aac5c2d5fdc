"""An HTTP/1.1 server connection without I/O: bytes in, events out; response
calls in, bytes out.

Request heads are read by h1fast (:mod:`.h1fast`) when it is sure of them,
and by h11 otherwise; either way the caller gets the same
:class:`~.events.Request`, :class:`~.events.Data` and
:class:`~.events.EndOfMessage` events and cannot tell which parser ran.
h1fast requests with a Content-Length body (or none) are framed here; chunked
bodies and everything h1fast hands over are framed by h11, one fresh
``h11.Connection`` per such request (so no h11 state outlives a request and
no private h11 API is needed). Responses are always written here, by
:func:`.responses.render_response_head`, byte-identical to h11's.

What is refused before any app sees the request (:class:`~.events.ProtocolError`
with the status to answer, then the connection closes): anything h11
refuses; obs-fold and repeated Content-Length (smuggling levers that h11
would tolerate); a head over ``max_head_size`` (431, or 414 when the request
line alone is too long), checked on complete heads too; a version that is not
1.x (505); Content-Length together with Transfer-Encoding, or a transfer
coding on HTTP/1.0 (400); CONNECT (405); a target that is not origin-form,
absolute-form or ``OPTIONS *`` (400).

Request side, one request at a time::

    IDLE --head--> BODY (Content-Length, framed here) --+--> DONE --next_cycle()--> IDLE
         \\-------> H11  (anything else, framed by h11) -/      \\--> LAST (no further request)

Bytes that arrive in DONE (a pipelined request) are held and the caller is
told to stop reading (:data:`~.events.PAUSED`) until :meth:`H1Connection.next_cycle`.
"""

from __future__ import annotations

import re

import h11

from pounce.core.protocol.events import (
    CHUNKED,
    CONNECTION_CLOSED,
    CONTENT_LENGTH,
    END,
    PAUSED,
    Data,
    EndOfMessage,
    LocalProtocolError,
    ProtocolError,
    Request,
)
from pounce.core.protocol.h1fast import parse_request_head
from pounce.core.protocol.responses import (
    LAST_CHUNK,
    STATUS_LINES,
    DefaultHeaders,
    chunk,
    fast_response_head,
    informational,
    last_chunk,
    reason,
    render_response_head_full,
)

__all__ = ["H1Connection"]

IDLE, BODY, H11, DONE, LAST = "IDLE", "BODY", "H11", "DONE", "LAST"

_NO_BODY_STATUS = frozenset({204, 304})
# Where a head ends, as h11 finds it (a blank line, CRLF or bare LF).
_BLANK_LINE = re.compile(rb"\n\r?\n")
_NO_DEFAULTS = DefaultHeaders(server=False, date=False)


class H1Connection:
    """One client connection, server side.

    ``receive_data`` / ``receive_eof`` return the events the input completes.
    After a request's :class:`~.events.EndOfMessage` and its response, call
    :meth:`next_cycle` for the events of whatever was held behind it.
    ``response`` / ``body`` / ``trailers`` / ``continue_`` return the bytes
    of the response to the current request.

    ``fast`` turns the h1fast parser off (every request through h11), for
    differential tests; ``defaults`` are the worker's default headers, read
    at each response.
    """

    def __init__(self, *, max_head_size: int = 16384, fast: bool = True,
                 defaults: DefaultHeaders | None = None) -> None:
        self.max_head_size = max_head_size
        self.fast = fast
        self.defaults = defaults or _NO_DEFAULTS
        self.state = IDLE
        # An incomplete head (IDLE), or input held behind a request (DONE).
        self.buffer = b""
        self.eof = False
        self.request: Request | None = None
        self.body_left = 0  # BODY: bytes still to come
        self._h11: h11.Connection | None = None
        # The response to the current request.
        self.keep_alive = True  # the server's side: False makes the next response the last
        self.continue_sent = False  # 100 sent, or the body came without it
        self.framing = CONTENT_LENGTH
        self.remaining = 0
        self.reusable = False  # the response allows another request on the connection
        self.bodiless = False  # HEAD, 204, 304: body pieces are dropped
        self.response_done = False

    # -- request side -------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[object]:
        state = self.state
        if state is IDLE:
            buf = self.buffer + data if self.buffer else data
            if self.fast:  # (_read_head, spelt out: this runs once per request)
                head = parse_request_head(buf, self.max_head_size)
                if head is not None and head.framing is CONTENT_LENGTH:
                    return self._start(head, buf, head.consumed)
            return self._read_head_h11(buf)
        if state is BODY:
            return self._read_body(data)
        if state is H11:
            self._h11.receive_data(data)  # type: ignore[union-attr]
            return self._h11_events()
        if state is DONE:
            self.buffer += data
            return [PAUSED]
        return []  # LAST: nothing after the last request is read (RFC 9112 9.6)

    def receive_eof(self) -> list[object]:
        """The peer sent FIN."""
        self.eof = True
        state = self.state
        if state is IDLE:
            if self.buffer:
                raise ProtocolError("peer unexpectedly closed connection")
            return [CONNECTION_CLOSED]
        if state is BODY:
            raise ProtocolError("peer closed connection without sending complete message body")
        if state is H11:
            self._h11.receive_data(b"")  # type: ignore[union-attr]
            return self._h11_events()
        if state is DONE and self.buffer:
            return []  # the held requests first; next_cycle reports the end
        return [CONNECTION_CLOSED]

    def next_cycle(self) -> list[object]:
        """The response to the current request is done and its body was read
        (state DONE): start on the next request with the held input."""
        if self.state is not DONE:
            raise LocalProtocolError(f"next_cycle() in state {self.state}")
        self.state = IDLE
        self.request = None
        self.continue_sent = False
        self.response_done = False
        held, self.buffer = self.buffer, b""
        events = self._read_head(held) if held else []
        if self.eof and self.state is IDLE:
            if self.buffer:
                raise ProtocolError("peer unexpectedly closed connection")
            events.append(CONNECTION_CLOSED)
        return events

    def take_held(self) -> bytes:
        """Input after the current request, for a protocol taking over the
        connection (a WebSocket's early frames)."""
        held, self.buffer = self.buffer, b""
        self.state = LAST
        return held

    def _read_head(self, buf: bytes) -> list[object]:
        if self.fast:
            head = parse_request_head(buf, self.max_head_size)
            if head is not None and head.framing is CONTENT_LENGTH:
                return self._start(head, buf, head.consumed)
        return self._read_head_h11(buf)

    def _read_head_h11(self, buf: bytes) -> list[object]:
        """A head h1fast did not take (or an incomplete one): h11 reads it."""
        match = _BLANK_LINE.search(buf)
        if match is None:
            if len(buf) > self.max_head_size:
                if b"\n" not in buf:
                    raise ProtocolError("request line too long", 414)
                raise ProtocolError("request head too large", 431)
            if buf and (buf[0] < 0x21 or buf[:1] == b"\n"):
                raise ProtocolError("illegal request line")
            self.buffer = buf
            return []
        end = match.end()
        if end > self.max_head_size:
            first = buf.find(b"\n")
            raise ProtocolError("request head too large", 414 if first > self.max_head_size else 431)
        _check_head(buf[:end])
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_head_size)
        conn.receive_data(buf)
        self.buffer = b""
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise ProtocolError(str(exc), exc.error_status_hint) from None
        if type(event) is not h11.Request:  # pragma: no cover - a complete head is a Request
            raise ProtocolError("incomplete request head")
        self._h11 = conn
        self.state = H11
        self.request = _from_h11(event)
        return [self.request, *self._h11_events()]

    def _start(self, head: Request, buf: bytes, consumed: int) -> list[object]:
        """A head h1fast read, with Content-Length framing (or no body)."""
        self.buffer = b""
        self.request = head
        left = head.content_length
        if not left:
            if consumed == len(buf) and head.keep_alive:
                # (_complete, for the commonest request: no body, nothing behind.)
                self.state = DONE
                return [head, END]
            return self._complete([head, END], buf[consumed:] if consumed < len(buf) else b"")
        have = len(buf) - consumed
        if have > left:
            end = consumed + left
            return self._complete([head, Data(buf[consumed:end]), END], buf[end:])
        if have == left:
            return self._complete([head, Data(buf[consumed:]), END], b"")
        self.state = BODY
        self.body_left = left - have
        return [head, Data(buf[consumed:])] if have else [head]

    def _read_body(self, data: bytes) -> list[object]:
        left = self.body_left
        size = len(data)
        if size < left:
            self.body_left = left - size
            return [Data(data)]
        self.body_left = 0
        if size == left:
            return self._complete([Data(data), END], b"")
        return self._complete([Data(data[:left]), END], data[left:])

    def _h11_events(self) -> list[object]:
        conn = self._h11
        assert conn is not None
        events: list[object] = []
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise ProtocolError(str(exc), exc.error_status_hint) from None
            kind = type(event)
            if kind is h11.Data or kind is h11.EndOfMessage:
                # Body on its way: a client that asked for 100 waits no more.
                self.continue_sent = True
            if kind is h11.Data:
                events.append(Data(event.data))  # type: ignore[union-attr]
            elif kind is h11.EndOfMessage:
                trailers = list(event.headers)  # type: ignore[union-attr]
                events.append(EndOfMessage(trailers) if trailers else END)
                held, closed = conn.trailing_data
                self._h11 = None
                if closed:
                    self.eof = True
                return self._complete(events, bytes(held))
            else:  # NEED_DATA (PAUSED and ConnectionClosed come only after the end)
                return events

    def _complete(self, events: list[object], rest: bytes) -> list[object]:
        """The current request is fully read; ``rest`` followed it."""
        request = self.request
        if request is not None and not request.keep_alive:
            # The client's last request: whatever follows is not read.
            self.state = LAST if request.upgrade is None else DONE
            if request.upgrade is not None:
                self.buffer = rest
            return events
        self.state = DONE
        if rest:
            self.buffer = rest
            events.append(PAUSED)
        return events

    # -- response side ------------------------------------------------------------

    def continue_(self) -> bytes:
        """``100 Continue``, for a client that waits for it before its body."""
        self.continue_sent = True
        return informational(100)

    @property
    def waits_for_continue(self) -> bool:
        request = self.request
        return request is not None and request.expect_continue and not self.continue_sent

    def response(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, more: bool,
                 trailers: bool = False) -> bytes:
        """The response head, with the first body piece.

        ``headers`` are the app's (lowercase names); the default headers go
        first unless the app set Server or Date itself; Content-Length is
        added for a body sent whole, ``Connection: close`` when the server
        ends the connection. ``trailers``: the app will send trailers, so
        the body is chunked for a client that accepts them.
        """
        request = self.request
        assert request is not None
        if request.expect_continue and not self.continue_sent:
            # The client never got its 100 and may or may not send the body
            # now: the connection cannot be reused safely.
            self.keep_alive = False
        preamble = self.defaults.preamble
        if preamble is not None and self.keep_alive and request.keep_alive and status != 204 and status != 304:
            line = STATUS_LINES.get(status)
            if line is not None and request.method != b"HEAD":
                # The common response (see fast_response_head), whole or not.
                fast = fast_response_head(line, headers, preamble, request.http_version,
                                          -1 if more or trailers else len(body))
                if fast is not None:
                    data, length = fast
                    self.framing = CONTENT_LENGTH
                    self.reusable = True
                    self.bodiless = False
                    if more or trailers:
                        self.remaining = length
                        return data + self.body(body, more, trailers) if body else data
                    if len(body) != length:
                        self.remaining = length
                        return data + self.body(body, more, trailers)  # raises, as h11 would
                    self.remaining = 0
                    self.response_done = True
                    return data + body
        return self._response(request, status, headers, body, more, trailers)

    def _response(self, request: Request, status: int, headers: list[tuple[bytes, bytes]], body: bytes,
                  more: bool, trailers: bool) -> bytes:
        """:meth:`response` by the full route: any headers, any framing."""
        has_length = has_server = has_date = has_coding = False
        for name, _ in headers:
            if name == b"content-length":
                has_length = True
            elif name == b"transfer-encoding":
                has_coding = True
            elif name == b"server":
                has_server = True
            elif name == b"date":
                has_date = True
        defaults = self.defaults
        preamble = defaults.preamble
        final: list[tuple[bytes, bytes]]
        if has_server or has_date or preamble is None:
            # The app overrides a default header: render them all per response.
            preamble = None
            final = [(n, v) for n, v in defaults.headers
                     if not ((n == b"server" and has_server) or (n == b"date" and has_date))]
        else:
            final = []
        if has_coding:
            # The spec: servers handle Transfer-Encoding themselves.
            final.extend(h for h in headers if h[0] != b"transfer-encoding")
        else:
            final.extend(headers)
        if status not in _NO_BODY_STATUS and not has_length and not more and not trailers:
            final.append((b"content-length", b"%d" % len(body)))
        if not self.keep_alive:
            final.append((b"connection", b"close"))
        try:
            head = render_response_head_full(
                status, final, reason=reason(status), request_method=request.method,
                request_version=request.http_version, keep_alive=request.keep_alive,
                preamble=preamble or b"")
        except ValueError as exc:
            raise LocalProtocolError(str(exc)) from None
        self.framing = head.framing
        self.remaining = head.content_length
        self.reusable = head.keep_alive
        self.bodiless = status in _NO_BODY_STATUS or request.method == b"HEAD"
        if not body and more:
            return head.data
        return head.data + self.body(body, more, trailers)

    def body(self, data: bytes, more: bool, trailers: bool = False) -> bytes:
        """A body piece of the response; with ``more`` false, its end (unless
        trailers follow). Raises where h11 would, before any state changes.
        The body of a HEAD, 204 or 304 response is dropped."""
        out = b""
        if data and not self.bodiless:
            framing = self.framing
            if framing is CONTENT_LENGTH:
                remaining = self.remaining - len(data)
                if remaining < 0:
                    raise LocalProtocolError("Too much data for declared Content-Length")
                self.remaining = remaining
                out = data
            elif framing is CHUNKED:
                out = chunk(data)
            else:
                out = data  # HTTP/1.0 framing: the body ends when the connection does
        if not more and not trailers:
            out += self._end()
        return out

    def body_written(self, size: int) -> None:
        """``size`` body bytes went out without :meth:`body` (sendfile): count
        them against the declared length."""
        if self.framing is CONTENT_LENGTH and not self.bodiless:
            if size > self.remaining:
                raise LocalProtocolError("Too much data for declared Content-Length")
            self.remaining -= size

    def trailers(self, fields: list[tuple[bytes, bytes]]) -> bytes:
        """The end of the body with trailer fields, which go out only in a
        chunked body to a client that asked for them (``TE: trailers``);
        otherwise they are dropped, as the ASGI spec allows."""
        if self.framing is CHUNKED and self.request is not None and self.request.trailers and fields:
            try:
                end = last_chunk(fields)
            except ValueError as exc:
                raise LocalProtocolError(str(exc)) from None
            self.response_done = True
            return end
        return self._end()

    def _end(self) -> bytes:
        if self.framing is CONTENT_LENGTH and self.remaining:
            raise LocalProtocolError("Too little data for declared Content-Length")
        self.response_done = True
        return LAST_CHUNK if self.framing is CHUNKED else b""

    @property
    def can_reuse(self) -> bool:
        """After the response: may the connection carry another request?"""
        return self.keep_alive and self.reusable and self.response_done


def _check_head(head: bytes) -> None:
    """pounce's checks on a complete head before h11 reads it: h11 unfolds
    obs-fold lines and merges equal repeated Content-Lengths (RFC 9112 and
    9110 allow either that or a 400); both are request-smuggling levers
    between a proxy and a server that disagree, so they are refused."""
    seen_length = False
    for line in head.split(b"\n")[1:]:
        if not line or line == b"\r":
            continue
        first = line[0]
        if first == 32 or first == 9:  # SP, HTAB
            raise ProtocolError("obs-fold (folded header line) is not accepted")
        if (first == 67 or first == 99) and line[:15].lower() == b"content-length:":  # C, c
            if seen_length or b"," in line:
                raise ProtocolError("repeated Content-Length")
            seen_length = True


def _from_h11(event: h11.Request) -> Request:
    """The protocol layer's request for a head h11 read, after the checks
    h11 does not make (see the module docstring)."""
    version = event.http_version
    if version != b"1.1" and version[:2] != b"1.":
        raise ProtocolError("HTTP version not supported", 505)
    headers = list(event.headers)
    length = -1
    chunked = has_coding = expect = trailers = False
    upgrade = None
    closing = False
    keep_alive = version == b"1.1"
    for name, value in headers:
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            has_coding = True
            chunked = True
        elif name == b"connection":
            tokens = [t.strip() for t in value.lower().split(b",")]
            if b"close" in tokens:
                keep_alive = False
                closing = True
            elif not closing and version == b"1.0" and b"keep-alive" in tokens:
                keep_alive = True
        elif name == b"upgrade":
            upgrade = value
        elif name == b"expect":
            expect = value.lower() == b"100-continue"
        elif name == b"te":
            trailers = b"trailers" in value.lower()
    if has_coding and (length >= 0 or version == b"1.0"):
        # RFC 9112 6.1: both framings at once may be rejected and must not
        # keep the connection; HTTP/1.0 has no transfer codings at all.
        raise ProtocolError("ambiguous request framing")
    method = event.method
    if method == b"CONNECT":
        # Tunnels are not an ASGI thing.
        raise ProtocolError("CONNECT is not supported", 405)
    target = event.target
    if target[:1] != b"/":
        target, headers = _other_target_form(method, target, headers)
    return Request(method, target, version, headers, CHUNKED if chunked else CONTENT_LENGTH,
                   max(length, 0), keep_alive, expect_continue=expect and version == b"1.1",
                   trailers=trailers, upgrade=upgrade)


def _other_target_form(method: bytes, target: bytes,
                       headers: list[tuple[bytes, bytes]]) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Targets that are not origin-form (rare): ``OPTIONS *`` passes as is;
    absolute-form becomes origin-form with ``host`` from the URI (RFC 9112
    3.2.2); anything else (authority-form, junk) is refused."""
    if target == b"*":
        if method == b"OPTIONS":
            return target, headers
    elif target[:7].lower() == b"http://" or target[:8].lower() == b"https://":
        rest = target.partition(b"://")[2]
        end = len(rest)
        for stop in (b"/", b"?", b"#"):
            index = rest.find(stop)
            if 0 <= index < end:
                end = index
        authority, tail = rest[:end], rest[end:]
        if authority and b"@" not in authority and not authority.translate(None, _AUTHORITY):
            headers = [(n, v) for n, v in headers if n != b"host"]
            headers.append((b"host", authority))
            return (tail if tail[:1] == b"/" else b"/" + tail), headers
    raise ProtocolError("unsupported request target form")


# Bytes an authority may hold (RFC 3986 host, port, IPv6 brackets).
_AUTHORITY = b"!$&'()*+,;=:.-_~[]%0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
