"""HTTP/1.1 over asyncio: a thin transport adapter around h11.

h11 owns the protocol state (parsing, framing, keep-alive rules); this module
owns bytes moving in and out, timers, flow control, and the ASGI ``http``
request cycle. One :class:`HttpProtocol` per connection, one
:class:`RequestCycle` per request.

Connection life, in the order the timers see it::

    connection_made ─ header timer ─▶ Request ─ app runs ─▶ response done
          ▲                                                     │
          └── first byte ◀─ keep-alive timer ◀─ (body drained) ─┘

What is refused before the app sees anything (all answered with an error
status and a closed connection): anything h11 refuses, obs-fold, a version
that is not 1.x (505), Content-Length together with Transfer-Encoding, a
transfer coding on HTTP/1.0, a target that is not origin-form, absolute-form
or ``OPTIONS *``, a body over ``max_request_body_size`` (413).
"""

from __future__ import annotations

import asyncio
import http
import logging
import time
from functools import partial
from typing import Any
from urllib.parse import unquote

import h11

from pounce.core.h1fast import (
    CHUNKED,
    CONTENT_LENGTH,
    LAST_CHUNK,
    RequestHead,
    chunk,
    parse_request_head,
    render_response_head,
)
from pounce.core.worker import WorkerContext, set_nodelay

logger = logging.getLogger("pounce.worker")

# How long a closed connection keeps reading (and dropping) client bytes
# after its FIN, so that unread input does not turn the close into a reset.
LINGER = 1.0

# Stop reading from the socket while this much request body waits for the app.
BODY_HIGH_WATER = 65536
# After a response, at most this much unread request body is read and thrown
# away to keep the connection; a longer one closes the connection instead.
DRAIN_LIMIT = 65536

_REASONS = {s.value: s.phrase.encode("ascii") for s in http.HTTPStatus}
_ASGI = {"version": "3.0", "spec_version": "2.4"}
_NO_BODY_STATUS = frozenset({204, 304})
_TRAILERS_EXTENSION: dict[str, Any] = {}

# The fast path (see HttpProtocol._try_fast). Read once per connection; a
# module switch so that tests can compare it with the h11 path on one server.
FAST_PATH = True


class ClientDisconnected(OSError):
    """``send()`` on a connection the client has gone from (ASGI HTTP 2.4).

    Raised into the app, which may clean up; never logged as an error.
    """


def _reason(status: int) -> bytes:
    return _REASONS.get(status, b"")


def error_response(ctx: WorkerContext, status: int, text: str | None = None) -> bytes:
    """A complete plain-text response that closes the connection.

    Built by hand so it can be sent whatever state h11 is in after an error.
    The body never echoes request data.
    """
    body = (text or _reason(status).decode("ascii") or "Error").encode("utf-8")
    lines = [b"HTTP/1.1 %d %s" % (status, _reason(status))]
    lines += [name + b": " + value for name, value in ctx.default_headers]
    lines += [
        b"content-type: text/plain; charset=utf-8",
        b"content-length: %d" % len(body),
        b"connection: close",
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# -- stricter request heads ----------------------------------------------------
#
# h11 unfolds obs-fold header lines and merges equal repeated Content-Lengths
# (RFC 9112 and 9110 allow either that or a 400). Both are classic
# request-smuggling levers between a proxy and a server that disagree, so
# pounce refuses them. h11 also applies ``max_incomplete_event_size`` only to
# heads still incomplete, so a large head that arrives in one read would pass.
# The connection subclass below reads request heads with a reader that does
# exactly what h11's does plus those checks. It is installed where h11 would
# install its own (a new connection, and each start_next_cycle), so the rest
# of h11 runs untouched and the cost is one extra call per request. If a
# future h11 moves these internals, pounce falls back to h11's own reader.

try:
    from h11._readers import READERS as _H11_READERS
    from h11._readers import _decode_header_lines, request_line_re
    from h11._util import validate as _validate

    _H11_HEAD_READER: Any = _H11_READERS[(h11.CLIENT, h11.IDLE)]
    if getattr(h11.Connection(h11.SERVER), "_reader", None) is not _H11_HEAD_READER:
        _H11_HEAD_READER = None
except (ImportError, KeyError, AttributeError):  # pragma: no cover - other h11
    _H11_HEAD_READER = None


def _read_request_head(limit: int, buf: Any) -> h11.Request | None:
    """h11's request-head reader plus pounce's checks (see above)."""
    before = len(buf)
    lines = buf.maybe_extract_lines()
    if lines is None:
        if buf.is_next_line_obviously_invalid_request_line():
            raise h11.LocalProtocolError("illegal request line")
        return None
    if not lines:
        raise h11.LocalProtocolError("no request line received")
    if before - len(buf) > limit:
        too_long = len(lines[0]) > limit
        raise h11.LocalProtocolError("request head too large", error_status_hint=414 if too_long else 431)
    seen_length = False
    for line in lines:
        first = line[0]  # lines are never empty inside a head
        if first == 32 or first == 9:  # SP, HTAB
            raise h11.LocalProtocolError("obs-fold (folded header line) is not accepted")
        if (first == 67 or first == 99) and line[:15].lower() == b"content-length:":  # C, c
            if seen_length or b"," in line:
                raise h11.LocalProtocolError("repeated Content-Length")
            seen_length = True
    matches = _validate(request_line_re, lines[0], "illegal request line: {!r}", lines[0])
    return h11.Request(headers=list(_decode_header_lines(lines[1:])), _parsed=True, **matches)


# One reader per head-size limit, shared by every connection of the process.
_HEAD_READERS: dict[int, Any] = {}


class _Connection(h11.Connection):
    """h11's server connection reading request heads with the strict reader."""

    def __init__(self, role: Any, max_incomplete_event_size: int) -> None:
        super().__init__(role, max_incomplete_event_size=max_incomplete_event_size)
        reader = _HEAD_READERS.get(max_incomplete_event_size)
        if reader is None:
            reader = _HEAD_READERS[max_incomplete_event_size] = partial(
                _read_request_head, max_incomplete_event_size)
        self._head_reader = self._reader = reader

    def start_next_cycle(self) -> None:
        super().start_next_cycle()
        self._reader = self._head_reader  # both sides are IDLE again


def _new_connection(max_incomplete_event_size: int) -> h11.Connection:
    if _H11_HEAD_READER is None:  # pragma: no cover - other h11
        return h11.Connection(h11.SERVER, max_incomplete_event_size=max_incomplete_event_size)
    return _Connection(h11.SERVER, max_incomplete_event_size)


class HttpProtocol(asyncio.BufferedProtocol):
    """One client connection speaking HTTP/1.1.

    A buffered protocol: reads land in the worker's shared read buffer and
    are copied out at their exact size (why: ``WorkerContext.read_buffer``).
    ``data_received`` is kept for callers that hand bytes over directly: a
    wrapping plugin's protocol, and replays of held pipelined bytes.
    """

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.read_buffer = ctx.read_buffer
        self.loop = asyncio.get_running_loop()
        self.conn = _new_connection(ctx.max_incomplete_event_size)
        self.transport: asyncio.Transport | None = None
        self.cycle: RequestCycle | None = None
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int | None] | None = None
        self.scheme = "http"
        # ASGI extensions fixed for the connection (``tls``); copied per request.
        self.extensions: dict[str, Any] = {}
        self.trusted_proxy = False
        self.keep_alive = True
        self.closed = False
        self.read_paused = False
        self.write_paused = False
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
        self.max_body: int = ctx.config.http.max_request_body_size
        self._drain_waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        # The fast path's keep-alive timer when it is the one in _timer, and
        # the loop time at which the connection, idle, closes (see _on_idle).
        self._idle_timer: asyncio.TimerHandle | None = None
        self.idle_deadline = 0.0
        # The fast path: True while a request that bypassed h11 owns the
        # connection (from its head until the next request may start); the
        # body bytes it still expects; bytes held back behind it (pipelined
        # requests), replayed when it is done, as h11 holds them (PAUSED).
        self.fast_enabled = FAST_PATH
        # The client's last request (Connection: close, HTTP/1.0) is read:
        # whatever follows it is ignored.
        self.last_request_read = False
        self.discard_input = False
        self.eof_seen = False
        self.fast_active = False
        self.fast_left = 0
        self.held = b""

    # -- asyncio callbacks -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (No isinstance check: uvloop's transports are not asyncio.Transport
        # subclasses, yet have its methods.)
        self.transport = transport  # type: ignore[assignment]
        set_nodelay(transport)
        peer = transport.get_extra_info("peername")
        sockname = transport.get_extra_info("sockname")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.client = (str(peer[0]), int(peer[1]))
        if isinstance(sockname, tuple) and len(sockname) >= 2:
            self.server = (str(sockname[0]), int(sockname[1]))
        elif isinstance(sockname, str) and sockname:
            self.server = (sockname, None)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            from pounce.core.tlsinfo import tls_extension

            self.scheme = "https"
            self.extensions = {"tls": tls_extension(ssl_object)}
        ctx = self.ctx
        proxy = ctx.proxy
        self.trusted_proxy = proxy is not None and proxy.trusts(self.client[0] if self.client else None)
        connections = ctx.connections
        connections.add(self)
        if ctx.limit_concurrency and len(connections) > ctx.limit_concurrency:
            self.over_limit = True
        self.reading_head = True
        self._set_timer(ctx.header_timeout, self._on_header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.ctx.connections.discard(self)
        self._cancel_timer()
        if self.cycle is not None:
            self.cycle.on_disconnect()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self.read_buffer[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        if self.discard_input:
            return
        if self.fast_active:
            self._fast_data(data)
            return
        if self.cycle is None and self.drain_left < 0 and self.fast_enabled and self._try_fast(data):
            return
        if not self.reading_head and self.cycle is None and self.drain_left < 0:
            # First bytes of a new request on an idle keep-alive connection:
            # the keep-alive timer gives way to the header timer, once.
            self.reading_head = True
            self._set_timer(self.ctx.header_timeout, self._on_header_timeout)
        self.conn.receive_data(data)
        self._handle_events()

    def eof_received(self) -> bool | None:
        self.eof_seen = True
        if self.discard_input:
            # Closed and lingering: the client is done too. Or bytes after a
            # last request are being dropped: keep writing its response.
            return None if self.closed else True
        if self.fast_active:
            if self.fast_left:
                # As h11 says when a body is cut short.
                self._reject(400, "peer closed connection without sending complete message body")
            # Otherwise the transport closes itself (None), as on the h11 path.
            return None
        self.conn.receive_data(b"")
        self._handle_events()
        return None

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.next_waits_for_writer:
            self.next_waits_for_writer = False
            if not self.closed and self.cycle is None:
                self._resume_reading()
                held = self.held
                if held:
                    self.held = b""
                    self.data_received(held)
                else:
                    self._handle_events()

    # -- the fast path ----------------------------------------------------------
    #
    # A request whose head arrives whole in one read and that
    # :func:`pounce.core.h1fast.parse_request_head` accepts (a subset of what
    # h11 accepts, parsed identically: tests/test_h1fast_differential.py)
    # skips h11 when nothing about it needs h11 or pounce's slower checks:
    # Content-Length framing or no body (chunked bodies go to h11), within
    # ``max_request_body_size``, no ``TE`` (trailers), no Upgrade or Expect
    # (h1fast hands those over), not over ``limit_concurrency``, not
    # shutting down, h11 idle with nothing buffered. Its response head comes
    # from :func:`pounce.core.h1fast.render_response_head`, byte-identical to
    # h11's. h11 stays IDLE meanwhile, so both paths mix on one connection:
    # bytes behind a fast request are held and replayed when it is done.

    def _try_fast(self, data: bytes) -> bool:
        ctx = self.ctx
        conn = self.conn
        if self.over_limit or ctx.shutting_down or conn.their_state is not h11.IDLE or conn.trailing_data[0]:
            return False
        head = parse_request_head(data, ctx.max_incomplete_event_size)
        if head is None or head.framing != CONTENT_LENGTH:
            return False
        left = head.content_length
        if self.max_body and left > self.max_body:
            return False  # h11 path: 413
        for name, _ in head.headers:
            if name == b"te":
                return False
        if self._timer is not self._idle_timer:
            self._cancel_timer()  # (the fast path's keep-alive timer stays: see _on_idle)
        self.reading_head = False
        cycle = RequestCycle(self, self.build_scope(head, "http"), head, fast=True)
        self.fast_active = True
        self.fast_left = left
        if not left:
            cycle.body_complete = True
        self.cycle = cycle
        cycle.task = self.loop.create_task(cycle.run(ctx.app))
        if head.consumed < len(data):
            self._fast_data(data[head.consumed:])
        return True

    def _fast_data(self, data: bytes) -> None:
        """Bytes while a fast request owns the connection: its body, or held."""
        left = self.fast_left
        if left:
            if len(data) <= left:
                piece, data = data, b""
            else:
                piece, data = data[:left], data[left:]
            self.fast_left = left = left - len(piece)
            cycle = self.cycle
            if cycle is not None:
                pause = cycle.feed(piece)
                if not left:
                    cycle.feed_end()
                elif pause:
                    self._pause_reading()
            elif not left:
                # The unread rest of the body, drained after the response.
                if data:
                    self.held += data
                self._fast_next()
                return
        if data:
            self.held += data
            self._pause_reading()

    def _fast_done(self, cycle: RequestCycle) -> None:
        """A fast request's response is done: as :meth:`cycle_done` does."""
        if not (self.keep_alive and cycle.alive and cycle.response_complete) or self.ctx.shutting_down:
            self._close()
            return
        left = self.fast_left
        if left:
            if left > DRAIN_LIMIT:
                self._close()
                return
            self._set_timer(self.ctx.header_timeout or self.ctx.keep_alive_timeout, self._close)
            self._resume_reading()
            return
        self._fast_next()

    def _fast_next(self) -> None:
        self.fast_active = False
        # As _next_cycle: keep-alive 0 closes when idle; no pipelined request
        # is taken while the client does not read its responses.
        loop = self.loop
        self.idle_deadline = loop.time() + self.ctx.keep_alive_timeout
        timer = self._timer
        if timer is None or timer is not self._idle_timer:
            if timer is not None:
                timer.cancel()
            self._timer = self._idle_timer = loop.call_at(self.idle_deadline, self._on_idle)
        if self.write_paused:
            self.next_waits_for_writer = True
            return
        self._resume_reading()
        held = self.held
        if held:
            self.held = b""
            self.data_received(held)

    def _on_idle(self) -> None:
        """The fast path's keep-alive timer, armed once per idle stretch
        rather than once per request (a timer and a cancel per request cost
        more than the rest of the bookkeeping): a request that starts leaves
        it armed, and when it fires it looks at what the connection is doing.
        Busy: nothing (the request's end arms the next one); idle for less
        than the timeout: armed again for the rest; else the connection closes.
        Any other timer replaces it (the h11 path's, the drain's)."""
        self._timer = self._idle_timer = None
        if self.closed or self.fast_active or self.cycle is not None or self.reading_head or self.drain_left >= 0:
            return
        deadline = self.idle_deadline
        if self.loop.time() < deadline:
            self._timer = self._idle_timer = self.loop.call_at(deadline, self._on_idle)
            return
        self._close()

    # -- event handling ------------------------------------------------------

    def _handle_events(self) -> None:
        conn = self.conn
        while not self.closed:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if self.last_request_read:
                    # Bytes after a request that said Connection: close (or
                    # HTTP/1.0): RFC 9112 9.6 says answer that request and
                    # process nothing further, not 400 it. Keep reading and
                    # drop them: bytes left unread in the kernel would turn
                    # our close into a reset that destroys the response
                    # still on its way to the client.
                    self.discard_input = True
                    return
                self._reject(exc.error_status_hint, str(exc))
                return
            if event is h11.NEED_DATA:
                return
            if event is h11.PAUSED:
                self._pause_reading()
                return
            kind = type(event)
            if kind is h11.Data:
                cycle = self.cycle
                if cycle is not None:
                    if cycle.feed(event.data):  # type: ignore[union-attr]
                        self._pause_reading()
                    elif cycle.too_large:
                        self._reject(413, "request body too large")
                        return
                else:
                    self.drain_left -= len(event.data)  # type: ignore[union-attr]
                    if self.drain_left < 0:
                        self._close()
                        return
            elif kind is h11.EndOfMessage:
                if self.cycle is not None:
                    self.cycle.feed_end()
                    if conn.their_state is h11.MUST_CLOSE:
                        self.last_request_read = True
                elif self.drain_left >= 0:
                    self.drain_left = -1
                    self._next_cycle()
                    return
            elif kind is h11.Request:
                self._on_request(event)  # type: ignore[arg-type]
            elif kind is h11.ConnectionClosed:
                if self.cycle is None or self.cycle.response_complete:
                    self._close()
                return

    def _on_request(self, event: h11.Request) -> None:
        self._cancel_timer()
        self.reading_head = False
        ctx = self.ctx
        version = event.http_version
        if version != b"1.1" and version[:2] != b"1.":
            self._reject(505, "HTTP version not supported")
            return
        # One pass over the headers for everything the core needs to know.
        upgrade = te = None
        has_length = has_coding = False
        max_body = self.max_body
        for name, value in event.headers:
            if name == b"content-length":
                has_length = True
                if max_body and int(value) > max_body:
                    self._reject(413, "request body too large")
                    return
            elif name == b"transfer-encoding":
                has_coding = True
            elif name == b"upgrade":
                upgrade = value
            elif name == b"te":
                te = value
        if has_coding and (has_length or version == b"1.0"):
            # RFC 9112 6.1: both framings at once may be rejected and must not
            # keep the connection; HTTP/1.0 has no transfer codings at all.
            # Disagreeing framings are the lever of request smuggling: refuse.
            self._reject(400, "ambiguous request framing")
            return
        if event.method == b"CONNECT":
            # Tunnels are not an ASGI thing; h11 would switch protocols on a 2xx.
            self._reject(405, "CONNECT is not supported")
            return
        target = event.target
        if target[:1] != b"/":
            event = self._other_target_form(event)  # type: ignore[assignment]
            if event is None:
                return
        if self.over_limit:
            # Over the limit when accepted; look again now, as the connections
            # that made it so may have closed since (a client that closes one
            # connection and opens the next is not over any limit).
            if len(ctx.connections) > ctx.limit_concurrency:
                self._reject(503, "Service Unavailable")
                return
            self.over_limit = False
        if ctx.shutting_down:
            self._reject(503, "Service Unavailable")
            return
        if upgrade is not None and ctx.websocket_enabled and upgrade.lower() == b"websocket":
            from pounce.core.websocket import handle_upgrade

            handle_upgrade(self, event)
            return
        scope = self.build_scope(event, "http")
        cycle = RequestCycle(self, scope, event)
        if te is not None and b"trailers" in te.lower():
            scope["extensions"]["http.response.trailers"] = _TRAILERS_EXTENSION
            cycle.trailers_accepted = True
        self.cycle = cycle
        cycle.task = self.loop.create_task(cycle.run(ctx.app))

    def _other_target_form(self, event: h11.Request) -> h11.Request | None:
        """Targets that are not origin-form (rare): ``OPTIONS *`` passes as is;
        absolute-form becomes origin-form with ``host`` from the URI (RFC 9112
        3.2.2); anything else (authority-form, junk) gets 400."""
        target = event.target
        if target == b"*":
            if event.method == b"OPTIONS":
                return event
        elif target[:7].lower() == b"http://" or target[:8].lower() == b"https://":
            rest = target.partition(b"://")[2]
            end = len(rest)
            for stop in (b"/", b"?", b"#"):
                index = rest.find(stop)
                if 0 <= index < end:
                    end = index
            authority, tail = rest[:end], rest[end:]
            if authority and b"@" not in authority:
                headers = [(n, v) for n, v in event.headers if n != b"host"]
                headers.append((b"host", authority))
                try:
                    return h11.Request(
                        method=event.method, headers=headers, http_version=event.http_version,
                        target=tail if tail[:1] == b"/" else b"/" + tail,
                    )
                except h11.LocalProtocolError:
                    pass
        self._reject(400, "unsupported request target form")
        return None

    def build_scope(self, event: h11.Request, kind: str) -> dict[str, Any]:
        """The ASGI scope for a request (``http``) or a handshake (``websocket``)."""
        target = event.target
        raw_path, _, query = target.partition(b"?")
        root = self.ctx.root_path
        path = unquote(raw_path.decode("ascii"))
        headers = list(event.headers)
        scheme = self.scheme if kind == "http" else ("wss" if self.scheme == "https" else "ws")
        scope: dict[str, Any] = {
            "type": kind,
            "asgi": _ASGI,
            "http_version": "1.0" if event.http_version == b"1.0" else "1.1",
            "scheme": scheme,
            "path": root + path if root else path,
            "raw_path": root.encode("utf-8") + raw_path if root else raw_path,
            "query_string": query,
            "root_path": root,
            "headers": headers,
            "client": self.client,
            "server": self.server,
            "state": self.ctx.lifespan_state.copy(),
            "extensions": dict(self.extensions),
        }
        if kind == "http":
            scope["method"] = event.method.decode("ascii")
        if self.trusted_proxy:
            self.ctx.proxy.apply(scope, headers)  # type: ignore[union-attr]
        return scope

    def cycle_done(self, cycle: RequestCycle) -> None:
        """A request/response finished: reuse the connection or close it."""
        self.cycle = None
        self.ctx.count_request()
        if self.closed:
            return
        if cycle.fast:
            self._fast_done(cycle)
            return
        conn = self.conn
        if not self.keep_alive or self.ctx.shutting_down or conn.our_state is not h11.DONE:
            self._close()
            return
        if conn.their_state is h11.SEND_BODY:
            # The app answered without reading the whole body: read and drop
            # the rest (bounded) so the next request starts at a clean edge.
            self.drain_left = DRAIN_LIMIT
            self._set_timer(self.ctx.header_timeout or self.ctx.keep_alive_timeout, self._close)
            self._resume_reading()
            self._handle_events()
            return
        self._next_cycle()

    def _next_cycle(self) -> None:
        conn = self.conn
        if conn.their_state is not h11.DONE:
            self._close()
            return
        try:
            conn.start_next_cycle()
        except h11.LocalProtocolError:
            self._close()
            return
        # Unlike the header timer, 0 is not "off": it closes as soon as idle.
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(self.ctx.keep_alive_timeout, self._close)
        if self.write_paused:
            # The client is not reading its responses: take no further
            # (pipelined) request until it does, or answers pile up in memory.
            self.next_waits_for_writer = True
            return
        self._resume_reading()
        self._handle_events()

    # -- writing -------------------------------------------------------------

    def write(self, data: bytes) -> None:
        transport = self.transport
        # is_closing(): a failed send closes the transport at once but tells
        # us (connection_lost) only on the next loop iteration; writing into
        # it meanwhile makes asyncio log a warning per write.
        if not self.closed and not transport.is_closing():  # type: ignore[union-attr]
            transport.write(data)  # type: ignore[union-attr]

    async def drain(self) -> None:
        if self.write_paused and not self.closed:
            self._drain_waiter = self.loop.create_future()
            await self._drain_waiter
            self._drain_waiter = None

    # -- closing ---------------------------------------------------------------

    def _reject(self, status: int, text: str) -> None:
        """Answer a bad request with ``status`` and close the connection.

        A request in flight is cut off: its app sees ``http.disconnect`` and
        nothing more of the request.
        """
        if status == 431:
            pending, _ = self.conn.trailing_data
            if pending and b"\n" not in pending:
                status = 414  # h11's own limit hit inside the request line
        if status < 400:
            status = 400
        cycle = self.cycle
        if self.drain_left >= 0:
            pass  # the response is out; what follows was only being skipped
        elif cycle is None or not cycle.headers_sent:
            self.write(error_response(self.ctx, status))
            if cycle is not None:
                cycle.status = status
                cycle.response_started = cycle.headers_sent = cycle.response_complete = True
        logger.debug("rejected request from %s: %s %s", self.client, status, text)
        self._close()
        if cycle is not None:
            cycle.on_disconnect()

    def _close(self) -> None:
        """Close after what was written, without losing it to a reset.

        Closing a TCP socket that still has unread input makes the kernel
        send RST, and the client then discards response bytes it has not
        read yet. So where the transport can half-close, send FIN after the
        response, read and drop whatever the client still sends, and close
        when it closes its side or after ``LINGER`` seconds ("lingering
        close"). The connection counts as open until then.
        """
        self._cancel_timer()
        transport = self.transport
        if not self.closed and transport is not None and not transport.is_closing():
            if not self.eof_seen and _can_half_close(transport):
                self.discard_input = True
                transport.write_eof()
                self._resume_reading()
                self._timer = self.loop.call_later(LINGER, transport.close)
            else:
                transport.close()
                self.ctx.connections.discard(self)
        else:
            self.ctx.connections.discard(self)
        self.closed = True

    def shutdown(self) -> None:
        """Graceful shutdown, called twice by the drain.

        The first call makes the response in progress (or the next one) the
        last, with ``Connection: close``: a request already on the wire, on a
        new or an idle keep-alive connection, is still served during the
        drain's short grace. The second call closes the connection if it is
        idle by then.
        """
        if not self.keep_alive and self.cycle is None and not self.reading_head:
            self._close()
        self.keep_alive = False

    def abort(self) -> None:
        if self.cycle is not None and self.cycle.task is not None:
            self.cycle.task.cancel()
        if self.transport is not None:
            self.transport.abort()
        self.closed = True
        self.ctx.connections.discard(self)

    # -- timers and flow control ----------------------------------------------

    def _set_timer(self, delay: float, callback: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(delay, callback) if delay > 0 else None

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_header_timeout(self) -> None:
        """Slowloris guard: the request head did not arrive in time."""
        self._timer = None
        if self.cycle is None:
            self._close()

    def _pause_reading(self) -> None:
        if not self.read_paused and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def _resume_reading(self) -> None:
        if self.read_paused and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]


def _can_half_close(transport: asyncio.BaseTransport) -> bool:
    try:
        return bool(transport.can_write_eof())  # type: ignore[attr-defined]
    except (NotImplementedError, AttributeError):  # wrapping transports
        return False


class RequestCycle:
    """One ASGI ``http`` request: the app's ``receive`` and ``send``."""

    def __init__(self, protocol: HttpProtocol, scope: dict[str, Any], request: h11.Request | RequestHead,
                 fast: bool = False) -> None:
        self.protocol = protocol
        # On the fast path the request head is kept to render the response
        # head without h11; framing, remaining and alive are what that
        # rendering decided (h11 tracks the same on the other path).
        self.fast = fast
        self.request = request
        self.framing = CONTENT_LENGTH
        self.remaining = 0
        self.alive = False
        self.scope = scope
        self.task: asyncio.Task[None] | None = None
        self.started_at = time.perf_counter()
        self.head = request.method == b"HEAD"
        self.http10 = request.http_version == b"1.0"
        self.body: list[bytes] = []
        self.buffered = 0
        self.received = 0
        self.max_body = protocol.max_body
        self.too_large = False
        self.body_complete = False
        self.body_delivered = False
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self.headers_sent = False
        self.trailers_accepted = False
        self.trailers_expected = False
        self.chunked = False
        self.body_complete_out = False
        self.status = 0
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.bytes_sent = 0
        self._waiter: asyncio.Future[None] | None = None
        self.timeout_handle: asyncio.TimerHandle | None = None

    # -- feeding from the protocol ---------------------------------------------

    def feed(self, data: bytes) -> bool:
        """Queue body bytes for the app; True when reading should pause."""
        self.body.append(data)
        size = len(data)
        self.buffered += size
        if self.max_body:
            self.received += size
            if self.received > self.max_body:
                self.too_large = True
                return False
        self._wake()
        return self.buffered > BODY_HIGH_WATER

    def feed_end(self) -> None:
        self.body_complete = True
        self._wake()

    def on_disconnect(self) -> None:
        self.disconnected = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- ASGI ----------------------------------------------------------------------

    async def run(self, app: Any) -> None:
        protocol = self.protocol
        if protocol.ctx.request_timeout:  # armed here: both the fast and the h11 path
            self.timeout_handle = protocol.loop.call_later(protocol.ctx.request_timeout, self.on_timeout)
        try:
            if not self.disconnected:
                # (A request refused while it was still being read, in the same
                # data as its head, never reaches the app.)
                await app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            if not (isinstance(exc, ClientDisconnected) or self.disconnected):
                logger.exception(
                    "error in ASGI app: %s %s", self.scope.get("method"), self.scope.get("path")
                )
            if not self.headers_sent:
                self._send_500()
            elif not self.response_complete:
                # Part of a response is on the wire: it cannot be replaced or
                # finished, so the only honest end is closing the connection.
                protocol._close()
            else:
                protocol.keep_alive = False
        else:
            if not self.response_started:
                self._send_500()
            elif not self.response_complete:
                # The app returned in the middle of its response: the response
                # cannot be completed, so the connection cannot be reused.
                protocol._close()
        finally:
            if self.timeout_handle is not None:
                self.timeout_handle.cancel()
            self._report()
            protocol.cycle_done(self)

    def on_timeout(self) -> None:
        """``timeout_request`` ran out: 504 when no response has started, else
        close the connection (a started response cannot be completed
        honestly); cancel the app either way."""
        self.timeout_handle = None
        if self.response_complete:
            return
        protocol = self.protocol
        logger.warning("request timed out after %.1f s (timeout_request): %s %s",
                       protocol.ctx.request_timeout, self.scope.get("method"), self.scope.get("path"))
        if not self.headers_sent and not protocol.closed:
            self.status = 504
            protocol.keep_alive = False
            protocol.write(error_response(protocol.ctx, 504))
            self.response_started = self.headers_sent = self.response_complete = True
        else:
            protocol._close()
        self.disconnected = True
        if self.task is not None:
            self.task.cancel()

    def _report(self) -> None:
        observers = self.protocol.ctx.observers
        if observers:
            duration = time.perf_counter() - self.started_at
            for observer in observers:
                try:
                    observer(self.scope, self.status, self.bytes_sent, duration)
                except Exception:
                    logger.exception("request observer failed")

    def _send_500(self) -> None:
        if not self.disconnected and not self.protocol.closed:
            self.status = 500
            self.protocol.keep_alive = False
            self.protocol.write(error_response(self.protocol.ctx, 500))
            self.response_started = self.headers_sent = self.response_complete = True

    async def receive(self) -> dict[str, Any]:
        protocol = self.protocol
        if not self.response_started and protocol.conn.they_are_waiting_for_100_continue:
            # The client holds its body back until told to go on; tell it now
            # that the app asks for the body, not before.
            protocol.write(protocol.conn.send(h11.InformationalResponse(status_code=100, headers=[])))  # type: ignore[arg-type]
        while not (
            self.disconnected
            or self.response_complete
            or self.body
            or (self.body_complete and not self.body_delivered)
        ):
            self._waiter = protocol.loop.create_future()
            await self._waiter
            self._waiter = None
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        body = self.body
        chunk = body[0] if len(body) == 1 else b"".join(body)
        body.clear()
        self.buffered = 0
        protocol._resume_reading()
        if self.body_complete:
            self.body_delivered = True
        return {"type": "http.request", "body": chunk, "more_body": not self.body_complete}

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        protocol = self.protocol
        if self.disconnected or (protocol.transport.is_closing() and not self.response_complete):  # type: ignore[union-attr]
            raise ClientDisconnected("the client has disconnected")
        if kind == "http.response.body":
            if not self.response_started:
                raise RuntimeError("http.response.body sent before http.response.start")
            if self.response_complete or (self.trailers_expected and self.body_complete_out):
                return  # the spec: messages after the response are ignored
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if self.fast:
                protocol.write(self._fast_body(body, more))
                if more and protocol.write_paused:
                    await protocol.drain()
                return
            conn = protocol.conn
            out = []
            if not self.headers_sent:
                out.append(conn.send(self._response(body, more)))
            if body and not self.head and self.status not in _NO_BODY_STATUS:
                out.append(conn.send(h11.Data(data=body)))
                self.bytes_sent += len(body)
            if not more:
                if self.trailers_expected:
                    self.body_complete_out = True
                else:
                    out.append(conn.send(h11.EndOfMessage()))
                    self.response_complete = True
                    self._wake()
            self.headers_sent = True
            protocol.write(b"".join(out))  # type: ignore[arg-type]
            if more and protocol.write_paused:
                await protocol.drain()
            return
        if kind == "http.response.start":
            if self.response_started:
                raise RuntimeError("http.response.start sent twice")
            status = message["status"]
            if not isinstance(status, int) or not 200 <= status <= 599:
                raise RuntimeError(f"invalid status {status!r}")
            self.response_started = True
            self.status = status
            self.response_headers = [(bytes(n).lower(), bytes(v)) for n, v in message.get("headers", ())]
            if message.get("trailers", False):
                self.trailers_expected = True
                self.body_complete_out = False
            if protocol.conn.they_are_waiting_for_100_continue:
                # The client never got its 100 and may or may not send the
                # body now: the connection cannot be reused safely.
                protocol.keep_alive = False
            return
        if kind == "http.response.trailers":
            if not self.trailers_expected or self.response_complete:
                raise RuntimeError("http.response.trailers without trailers=True in http.response.start")
            if not self.body_complete_out:
                raise RuntimeError("http.response.trailers before the last http.response.body")
            if self.trailers is None:
                self.trailers = []
            self.trailers.extend((bytes(n).lower(), bytes(v)) for n, v in message.get("headers", ()))
            if message.get("more_trailers", False):
                return
            # Trailers go out only in a chunked body to a client that asked for
            # them (TE: trailers); otherwise they are dropped, as the spec allows.
            if self.fast:
                # The fast path never accepts trailers (TE goes to h11): end the body.
                if self.framing == CONTENT_LENGTH and self.remaining:
                    raise h11.LocalProtocolError("Too little data for declared Content-Length")
                if self.framing == CHUNKED:
                    protocol.write(LAST_CHUNK)
                self.response_complete = True
                self._wake()
                return
            trailers = self.trailers if self.chunked else []
            protocol.write(protocol.conn.send(h11.EndOfMessage(headers=trailers)))  # type: ignore[arg-type]
            self.response_complete = True
            self._wake()
            return
        raise RuntimeError(f"unexpected ASGI message {kind!r} on an http connection")

    def _fast_body(self, body: bytes, more: bool) -> bytes:
        """What h11 would write for this body message, written without h11.

        Raises where h11 would (so the app sees the same errors), before any
        state changes, as h11 does.
        """
        out: list[bytes] = []
        framing = self.framing
        remaining = self.remaining
        status = self.status
        if not self.headers_sent:
            request: Any = self.request
            preamble = self.protocol.ctx.default_head
            headers = self._final_headers(body, more, preamble is None)
            if headers is None:  # the app sets Server or Date itself
                preamble = None
                headers = self._final_headers(body, more, True)
            try:
                head = render_response_head(
                    status, headers, reason=_reason(status),  # type: ignore[arg-type]
                    request_method=request.method, request_version=request.http_version,
                    keep_alive=request.keep_alive, preamble=preamble or b"")
            except ValueError as exc:
                raise h11.LocalProtocolError(str(exc)) from None
            out.append(head.data)
            framing = head.framing
            remaining = head.content_length
            self.alive = head.keep_alive
        sent = 0
        if body and not self.head and status not in _NO_BODY_STATUS:
            sent = len(body)
            if framing == CONTENT_LENGTH:
                remaining -= sent
                if remaining < 0:
                    raise h11.LocalProtocolError("Too much data for declared Content-Length")
                out.append(body)
            elif framing == CHUNKED:
                out.append(chunk(body))
            else:
                out.append(body)  # HTTP/1.0 framing: the body ends when the connection does
        if not more and not self.trailers_expected:
            if framing == CONTENT_LENGTH and remaining:
                raise h11.LocalProtocolError("Too little data for declared Content-Length")
            if framing == CHUNKED:
                out.append(LAST_CHUNK)
        self.framing = framing
        self.remaining = remaining
        self.headers_sent = True
        self.bytes_sent += sent
        if not more:
            if self.trailers_expected:
                self.body_complete_out = True
            else:
                self.response_complete = True
                self._wake()
        return out[0] if len(out) == 1 else b"".join(out)

    def _response(self, body: bytes, more: bool) -> h11.Response:
        """The response head for h11."""
        return h11.Response(status_code=self.status, headers=self._final_headers(body, more, True),  # type: ignore[arg-type]
                            reason=_reason(self.status))

    def _final_headers(self, body: bytes, more: bool, defaults: bool) -> list[tuple[bytes, bytes]] | None:
        """The response headers: default headers, the app's, and the framing.

        Without ``defaults`` (the fast path, which writes the worker's
        pre-rendered default headers instead) the default headers are left
        out, or None comes back when the app overrides one of them.
        """
        headers = self.response_headers
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
        final: list[tuple[bytes, bytes]] = []
        if defaults:
            for name, value in self.protocol.ctx.default_headers:
                if (name == b"server" and has_server) or (name == b"date" and has_date):
                    continue
                final.append((name, value))
        elif has_server or has_date:
            return None
        if has_coding:
            # The spec: servers handle Transfer-Encoding themselves.
            final.extend(h for h in headers if h[0] != b"transfer-encoding")
        else:
            final.extend(headers)
        status = self.status
        if status in _NO_BODY_STATUS:
            pass
        elif self.trailers_expected and self.trailers_accepted and not self.http10 and not has_length:
            self.chunked = True  # h11 chooses chunked: no length header
        elif not has_length and not more and not self.trailers_expected:
            final.append((b"content-length", b"%d" % len(body)))
        if not self.protocol.keep_alive:
            final.append((b"connection", b"close"))
        return final
