"""HTTP/1.1 over asyncio: a thin transport adapter around h11.

h11 owns the protocol state (parsing, framing, keep-alive rules); this module
owns bytes moving in and out, timers, flow control, and the ASGI ``http``
request cycle. One :class:`HttpProtocol` per connection, one
:class:`RequestCycle` per request.
"""

from __future__ import annotations

import asyncio
import http
import logging
import time
from typing import Any
from urllib.parse import unquote

import h11

from pounce.core.worker import WorkerContext, set_nodelay

logger = logging.getLogger("pounce.worker")

# Stop reading from the socket while this much request body waits for the app.
BODY_HIGH_WATER = 65536

_REASONS = {s.value: s.phrase.encode("ascii") for s in http.HTTPStatus}
_ASGI = {"version": "3.0", "spec_version": "2.4"}
_NO_BODY_STATUS = frozenset({204, 304})


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


class HttpProtocol(asyncio.Protocol):
    """One client connection speaking HTTP/1.1."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.loop = asyncio.get_running_loop()
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=ctx.max_incomplete_event_size)
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
        self._drain_waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio callbacks -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
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
        proxy = self.ctx.proxy
        self.trusted_proxy = proxy is not None and proxy.trusts(self.client[0] if self.client else None)
        self.ctx.connections.add(self)
        self._set_timer(self.ctx.header_timeout, self._on_header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.ctx.connections.discard(self)
        self._cancel_timer()
        if self.cycle is not None:
            self.cycle.on_disconnect()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.cycle is None and self._timer is not None and self.conn.their_state is h11.IDLE:
            # First bytes of a new request on an idle keep-alive connection.
            self._set_timer(self.ctx.header_timeout, self._on_header_timeout)
        self.conn.receive_data(data)
        self._handle_events()

    def eof_received(self) -> bool | None:
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

    # -- event handling ------------------------------------------------------

    def _handle_events(self) -> None:
        conn = self.conn
        while not self.closed:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
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
                    cycle.feed(event.data)  # type: ignore[union-attr]
                    if cycle.buffered > BODY_HIGH_WATER:
                        self._pause_reading()
            elif kind is h11.EndOfMessage:
                if self.cycle is not None:
                    self.cycle.feed_end()
            elif kind is h11.Request:
                self._on_request(event)  # type: ignore[arg-type]
            elif kind is h11.ConnectionClosed:
                if self.cycle is None or self.cycle.response_complete:
                    self._close()
                return

    def _on_request(self, event: h11.Request) -> None:
        self._cancel_timer()
        ctx = self.ctx
        if event.http_version not in (b"1.1", b"1.0"):
            self._reject(505, "HTTP version not supported")
            return
        upgrade = _header(event.headers, b"upgrade")
        if upgrade is not None and upgrade.lower() == b"websocket":
            from pounce.core.websocket import handle_upgrade

            handle_upgrade(self, event)
            return
        if ctx.shutting_down or (ctx.limit_concurrency and len(ctx.connections) > ctx.limit_concurrency):
            self._reject(503, "Service Unavailable")
            return
        scope = self.build_scope(event, "http")
        cycle = RequestCycle(self, scope, event)
        self.cycle = cycle
        cycle.task = self.loop.create_task(cycle.run(ctx.app))

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
            "http_version": "1.1" if event.http_version == b"1.1" else "1.0",
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
        conn = self.conn
        if (
            not self.keep_alive
            or self.ctx.shutting_down
            or conn.our_state is not h11.DONE
            or conn.their_state is not h11.DONE
        ):
            self._close()
            return
        try:
            conn.start_next_cycle()
        except h11.LocalProtocolError:
            self._close()
            return
        self._set_timer(self.ctx.keep_alive_timeout, self._close)
        self._resume_reading()
        self._handle_events()

    # -- writing -------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)  # type: ignore[union-attr]

    async def drain(self) -> None:
        if self.write_paused and not self.closed:
            self._drain_waiter = self.loop.create_future()
            await self._drain_waiter
            self._drain_waiter = None

    # -- closing ---------------------------------------------------------------

    def _reject(self, status: int, text: str) -> None:
        """Answer a bad request with ``status`` and close the connection."""
        if status == 431:
            pending, _ = self.conn.trailing_data
            if b"\n" not in pending:
                status = 414  # the request line alone is too long
        if status < 400:
            status = 400
        if self.cycle is None or not self.cycle.response_started:
            self.write(error_response(self.ctx, status))
        logger.debug("rejected request from %s: %s %s", self.client, status, text)
        self._close()

    def _close(self) -> None:
        self._cancel_timer()
        if not self.closed and self.transport is not None:
            self.transport.close()
        self.closed = True
        self.ctx.connections.discard(self)

    def shutdown(self) -> None:
        """Graceful shutdown: close now when idle, after the response otherwise."""
        self.keep_alive = False
        if self.cycle is None:
            self._close()

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


def _header(headers: Any, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


class RequestCycle:
    """One ASGI ``http`` request: the app's ``receive`` and ``send``."""

    def __init__(self, protocol: HttpProtocol, scope: dict[str, Any], request: h11.Request) -> None:
        self.protocol = protocol
        self.scope = scope
        self.task: asyncio.Task[None] | None = None
        self.started_at = time.perf_counter()
        self.head = request.method == b"HEAD"
        self.body: list[bytes] = []
        self.buffered = 0
        self.body_complete = False
        self.body_delivered = False
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self.headers_sent = False
        self.status = 0
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.bytes_sent = 0
        self.expect_continue = _header(request.headers, b"expect") == b"100-continue"
        self._waiter: asyncio.Future[None] | None = None

    # -- feeding from the protocol ---------------------------------------------

    def feed(self, data: bytes) -> None:
        self.body.append(data)
        self.buffered += len(data)
        self._wake()

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
        try:
            await app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            pass
        except Exception:
            logger.exception(
                "error in ASGI app: %s %s", self.scope.get("method"), self.scope.get("path")
            )
            if not self.response_started:
                await self._send_500()
            else:
                self.protocol.keep_alive = False
                if not self.response_complete:
                    self.protocol._close()
        else:
            if not self.response_started:
                await self._send_500()
            elif not self.response_complete:
                # The app returned in the middle of its body: the response cannot
                # be completed, so the connection cannot be reused.
                self.protocol._close()
        finally:
            self._report()
            self.protocol.cycle_done(self)

    def _report(self) -> None:
        observers = self.protocol.ctx.observers
        if observers:
            duration = time.perf_counter() - self.started_at
            for observer in observers:
                try:
                    observer(self.scope, self.status, self.bytes_sent, duration)
                except Exception:
                    logger.exception("request observer failed")

    async def _send_500(self) -> None:
        if not self.disconnected and not self.protocol.closed:
            self.status = 500
            self.protocol.keep_alive = False
            self.protocol.write(error_response(self.protocol.ctx, 500))
            self.response_started = self.response_complete = True

    async def receive(self) -> dict[str, Any]:
        protocol = self.protocol
        if self.expect_continue and not self.response_started:
            self.expect_continue = False
            if protocol.conn.their_state is h11.SEND_BODY:
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
        if kind == "http.response.start":
            if self.response_started:
                raise RuntimeError("http.response.start sent twice")
            status = message["status"]
            if not isinstance(status, int) or not 200 <= status <= 599:
                raise RuntimeError(f"invalid status {status!r}")
            self.response_started = True
            self.status = status
            self.response_headers = [(bytes(n).lower(), bytes(v)) for n, v in message.get("headers", ())]
            return
        if kind == "http.response.body":
            if not self.response_started:
                raise RuntimeError("http.response.body sent before http.response.start")
            if self.response_complete:
                raise RuntimeError("http.response.body sent after the response ended")
            if self.disconnected:
                return
            body = message.get("body", b"")
            more = message.get("more_body", False)
            conn = protocol.conn
            out = []
            if not self.headers_sent:
                out.append(conn.send(self._response(body, more)))
                self.headers_sent = True
            if body and not self.head and self.status not in _NO_BODY_STATUS:
                out.append(conn.send(h11.Data(data=body)))
                self.bytes_sent += len(body)
            if not more:
                out.append(conn.send(h11.EndOfMessage()))
                self.response_complete = True
                self._wake()
            protocol.write(b"".join(out))  # type: ignore[arg-type]
            if more and protocol.write_paused:
                await protocol.drain()
            return
        raise RuntimeError(f"unexpected ASGI message {kind!r} on an http connection")

    def _response(self, body: bytes, more: bool) -> h11.Response:
        headers = self.response_headers
        has_length = has_server = has_date = False
        for name, _ in headers:
            if name == b"content-length" or name == b"transfer-encoding":
                has_length = True
            elif name == b"server":
                has_server = True
            elif name == b"date":
                has_date = True
        final: list[tuple[bytes, bytes]] = []
        for name, value in self.protocol.ctx.default_headers:
            if (name == b"server" and has_server) or (name == b"date" and has_date):
                continue
            final.append((name, value))
        final.extend(headers)
        if not has_length and not more and self.status not in _NO_BODY_STATUS and not self.head:
            final.append((b"content-length", b"%d" % len(body)))
        if not self.protocol.keep_alive:
            final.append((b"connection", b"close"))
        return h11.Response(status_code=self.status, headers=final, reason=_reason(self.status))
