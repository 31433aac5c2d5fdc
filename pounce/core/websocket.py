"""WebSocket over asyncio: the transport adapter and the ASGI ``websocket``
cycle, with the protocol rules kept in :mod:`pounce.core.wssession`.

:func:`handle_upgrade` is called by the HTTP/1.1 protocol when a request asks
for ``Upgrade: websocket``. A malformed handshake is answered (400/426) without
calling the app; a valid one hands the transport over to a new
:class:`WebSocketProtocol`, which runs the app and moves bytes. This module
owns what needs a loop: timers (ping, pong deadline, close linger), flow
control in both directions, and the app task.

Flow control: a peer that does not read pauses the app inside ``send`` (and
pounce stops reading from that peer too, so its pings cannot pile up pongs); an
app that does not call ``receive`` fast enough pauses reading once
``INBOX_HIGH_WATER`` bytes or ``INBOX_MAX_MESSAGES`` messages wait for it.
"""

from __future__ import annotations

import asyncio
import http
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import h11

# ``send`` after the socket closed raises the same OSError subclass as an HTTP
# send after a disconnect (ASGI spec 2.4), so an app catches one class.
from pounce.core.http11 import ClientDisconnected
from pounce.core.wssession import (
    ABNORMAL,
    INTERNAL_ERROR,
    NORMAL,
    SERVICE_RESTART,
    Handshake,
    HandshakeError,
    WebSocketSession,
    accept_response,
    check_headers,
    parse_handshake,
)

if TYPE_CHECKING:
    from pounce.core.http11 import HttpProtocol
    from pounce.core.worker import WorkerContext

__all__ = ["ClientDisconnected", "WebSocketProtocol", "handle_upgrade"]

logger = logging.getLogger("pounce.websocket")

# Stop reading from the peer while this much received data waits for the app.
INBOX_HIGH_WATER = 65536
INBOX_MAX_MESSAGES = 256
# After we send a close frame, how long to wait for the peer's before hanging up.
CLOSE_TIMEOUT = 5.0

_CONNECTING, _OPEN, _RESPONSE, _DONE = range(4)
_CONNECT = {"type": "websocket.connect"}


class _Settings:
    """The ``[websocket]`` section, read once per worker."""

    __slots__ = ("max_message_size", "ping_interval", "ping_timeout", "per_message_deflate", "shutdown_code")

    def __init__(self, ctx: WorkerContext) -> None:
        section = ctx.websocket
        self.max_message_size: int = section.get("max_message_size", 16777216)
        self.ping_interval: float = section.get("ping_interval", 20.0)
        self.ping_timeout: float = section.get("ping_timeout", 20.0)
        self.per_message_deflate: bool = section.get("per_message_deflate", True)
        # 1012 tells clients "come back shortly", which is what a graceful stop
        # or restart of a pounce worker means; set ctx.websocket_shutdown_code
        # to 1001 (going away) for a stop that will not come back.
        self.shutdown_code: int = getattr(ctx, "websocket_shutdown_code", SERVICE_RESTART)


def _settings(ctx: WorkerContext) -> _Settings:
    settings = ctx.__dict__.get("_websocket_settings")
    if settings is None:
        settings = ctx.__dict__["_websocket_settings"] = _Settings(ctx)
    return settings


def _http_response(
    conn: h11.Connection,
    ctx: WorkerContext,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    *,
    more: bool = False,
) -> bytes:
    """An HTTP response to the upgrade request, framed by the request's own h11
    connection, always ending the connection."""
    names = {name for name, _ in headers}
    final = [(n, v) for n, v in ctx.default_headers if n not in names]
    final += headers
    if not more and b"content-length" not in names and b"transfer-encoding" not in names:
        final.append((b"content-length", b"%d" % len(body)))
    if b"connection" not in names:
        final.append((b"connection", b"close"))
    try:
        reason = http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        reason = b""
    out = conn.send(h11.Response(status_code=status, headers=final, reason=reason)) or b""
    if body:
        out += conn.send(h11.Data(data=body)) or b""
    if not more:
        out += conn.send(h11.EndOfMessage()) or b""
    return out


def _error_response(protocol: HttpProtocol, status: int, text: str,
                    headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = (text + "\n").encode("utf-8")
    hdrs = [(b"content-type", b"text/plain; charset=utf-8")] + (headers or [])
    try:
        protocol.write(_http_response(protocol.conn, protocol.ctx, status, hdrs, body))
    except h11.LocalProtocolError:
        pass
    protocol._close()


def handle_upgrade(protocol: HttpProtocol, event: h11.Request) -> None:
    """Take over ``protocol``'s transport for a WebSocket handshake.

    Called from inside the HTTP protocol's event loop right after the request
    head was parsed: ``conn.trailing_data`` then holds exactly the bytes that
    followed the head (frames a client sent early).
    """
    ctx = protocol.ctx
    # (limit_concurrency and draining already answered 503 in the HTTP protocol)
    try:
        handshake = parse_handshake(event)
    except HandshakeError as exc:
        logger.debug("bad WebSocket handshake from %s: %s", protocol.client, exc)
        _error_response(protocol, exc.status, str(exc), exc.headers)
        return
    transport = protocol.transport
    assert transport is not None
    scope = protocol.build_scope(event, "websocket")
    scope["subprotocols"] = handshake.subprotocols
    scope["extensions"]["websocket.http.response"] = {}
    early = bytes(protocol.conn.trailing_data[0])
    ws = WebSocketProtocol(protocol, scope, handshake, early)
    # Hand the transport over: from here on the HTTP protocol must neither read
    # nor write (its event loop stops at ``closed``), and it no longer counts
    # as a connection of its own.
    transport.set_protocol(ws)
    protocol.closed = True
    ctx.connections.discard(protocol)
    ctx.connections.add(ws)
    if protocol.read_paused:
        transport.resume_reading()
    ws.start()


class WebSocketProtocol(asyncio.BufferedProtocol):
    """One upgraded connection: asyncio callbacks, timers and the app task.

    Reads into the worker's shared buffer, as ``HttpProtocol`` does.
    """

    def __init__(self, http_protocol: HttpProtocol, scope: dict[str, Any], handshake: Handshake,
                 early: bytes) -> None:
        self.ctx = http_protocol.ctx
        self.read_buffer = self.ctx.read_buffer
        self.settings = _settings(self.ctx)
        self.loop = http_protocol.loop
        self.transport: asyncio.Transport = http_protocol.transport  # type: ignore[assignment]
        self.h11 = http_protocol.conn
        self.client = http_protocol.client
        self.scope = scope
        self.handshake = handshake
        self.session: WebSocketSession | None = None
        self.phase = _CONNECTING
        self.early = bytearray(early)
        self.inbox: deque[dict[str, Any]] = deque()
        self.inbox_bytes = 0
        self.disconnect: dict[str, Any] | None = None  # set once the socket is over
        self.connect_sent = False
        self.transport_closed = False
        self.task: asyncio.Task[None] | None = None
        self.task_done = False
        self.read_paused = False
        self.write_paused = False
        self.shutdown_requested = False
        self.started_at = time.perf_counter()
        self.status = 0
        self.bytes_sent = 0
        self.response_status = 0
        self.response_headers: list[tuple[bytes, bytes]] = []
        self._waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._pongs_at_ping = 0

    def start(self) -> None:
        self.task = self.loop.create_task(self._run(self.ctx.app))

    # -- asyncio callbacks ---------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self.read_buffer[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        session = self.session
        if session is not None:
            messages = session.receive_data(data)
            self._after_session(session, messages)
        elif self.phase == _CONNECTING:
            # A client must wait for 101 before sending frames; keep what it
            # sent anyway (bounded) and parse it once the app accepts.
            self.early += data
            self._update_reading()

    def eof_received(self) -> bool | None:
        session = self.session
        if session is not None:
            self._after_session(session, session.receive_data(None))
        else:
            self._deliver({"type": "websocket.disconnect", "code": ABNORMAL, "reason": ""})
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport_closed = True
        self._cancel_timers()
        if self.disconnect is None:
            session = self.session
            if session is not None:
                for message in session.receive_data(None):
                    self._deliver(message)
            if self.disconnect is None:
                self._deliver({"type": "websocket.disconnect", "code": ABNORMAL, "reason": ""})
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._forget_if_done()

    def pause_writing(self) -> None:
        self.write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._update_reading()

    # -- session plumbing ------------------------------------------------------

    def _write(self, data: bytes) -> None:
        # is_closing(): see HttpProtocol.write (no writes into a transport
        # that a failed send has already closed).
        if data and not self.transport_closed and not self.transport.is_closing():
            self.transport.write(data)

    def _after_session(self, session: WebSocketSession, messages: list[dict[str, Any]]) -> None:
        """Write what the session produced, hand messages to the app, hang up
        when the session is over."""
        out = session.data_to_send()
        if out:
            self._write(out)
        if self._pong_timer is not None and session.pongs > self._pongs_at_ping:
            self._pong_timer.cancel()
            self._pong_timer = None
        for message in messages:
            self._deliver(message)
        if session.finished:
            self._close_transport()

    def _deliver(self, message: dict[str, Any]) -> None:
        if self.disconnect is not None:
            return
        if message["type"] == "websocket.disconnect":
            self.disconnect = message
        else:
            data = message.get("text")
            if data is None:
                data = message["bytes"]
            self.inbox_bytes += len(data)
        self.inbox.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.inbox_bytes > INBOX_HIGH_WATER or len(self.inbox) > INBOX_MAX_MESSAGES:
            self._update_reading()

    def _update_reading(self) -> None:
        """Read only while the app keeps up and the peer keeps reading."""
        if self.transport_closed:
            return
        pause = (
            self.write_paused
            or self.inbox_bytes > INBOX_HIGH_WATER
            or len(self.inbox) > INBOX_MAX_MESSAGES
            or len(self.early) > INBOX_HIGH_WATER
        )
        if pause and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()
        elif not pause and self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    # -- timers --------------------------------------------------------------------

    def _schedule_ping(self) -> None:
        interval = self.settings.ping_interval
        if interval > 0 and not self.transport_closed:
            self._ping_timer = self.loop.call_later(interval, self._ping)

    def _ping(self) -> None:
        self._ping_timer = None
        session = self.session
        if session is None or not session.open or self.transport_closed:
            return
        self._write(session.ping(b"%d" % session.pongs))
        timeout = self.settings.ping_timeout
        if timeout > 0 and self._pong_timer is None:
            self._pongs_at_ping = session.pongs
            self._pong_timer = self.loop.call_later(timeout, self._ping_timed_out)
        self._schedule_ping()

    def _ping_timed_out(self) -> None:
        """No pong within ``ping_timeout``: the peer is gone or stuck."""
        self._pong_timer = None
        session = self.session
        if session is None or self.transport_closed:
            return
        if self.read_paused or self.write_paused:
            # Flow control is holding the pong (unread) or the ping (unsent):
            # that is a busy peer, not a dead one. Look again later.
            self._pong_timer = self.loop.call_later(self.settings.ping_timeout, self._ping_timed_out)
            return
        logger.debug("WebSocket %s: no pong within %ss, closing", self.client, self.settings.ping_timeout)
        self._write(session.close(INTERNAL_ERROR, "keepalive ping timeout"))
        self._deliver(session.disconnect_message())
        session.reported = True
        self._close_transport()

    def _start_close_timer(self) -> None:
        if self._close_timer is None and not self.transport_closed:
            self._close_timer = self.loop.call_later(CLOSE_TIMEOUT, self._close_transport)

    def _cancel_timers(self) -> None:
        for timer in (self._ping_timer, self._pong_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        self._ping_timer = self._pong_timer = self._close_timer = None

    # -- closing ---------------------------------------------------------------------

    def _close_transport(self) -> None:
        self._cancel_timers()
        if not self.transport_closed:
            self.transport.close()  # flushes what is buffered, then closes

    def _local_close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake; the app hears about it when the peer
        answers (or when the linger timer gives up on it)."""
        session = self.session
        if session is None:
            return
        self._write(session.close(code, reason))
        if session.finished:
            self._close_transport()
        else:
            self._start_close_timer()

    def _forget_if_done(self) -> None:
        if self.transport_closed and self.task_done:
            self.ctx.connections.discard(self)

    def shutdown(self) -> None:
        """Graceful shutdown: close open sockets with the shutdown code (1012
        by default); a handshake still waiting for the app is closed that way
        as soon as the app accepts it."""
        self.shutdown_requested = True
        if self.phase == _OPEN and self.session is not None and self.session.open:
            self._local_close(self.settings.shutdown_code)

    def abort(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self._cancel_timers()
        if not self.transport_closed:
            self.transport.abort()
        self.transport_closed = True
        self.ctx.connections.discard(self)

    # -- ASGI ----------------------------------------------------------------------------

    async def _run(self, app: Any) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            self._close_transport()
        except ClientDisconnected:
            pass
        except Exception as exc:
            self._app_failed(exc)
        else:
            self._app_returned()
        finally:
            self.task_done = True
            self._forget_if_done()

    def _app_failed(self, exc: Exception) -> None:
        path = self.scope.get("path")
        if self.phase == _CONNECTING:
            # Often an HTTP-only app meeting a websocket scope: refuse the
            # handshake with one line in the log, the traceback only at debug.
            logger.error("WebSocket %s: handshake refused (500), the app raised %s: %s",
                         path, type(exc).__name__, exc)
            logger.debug("app traceback", exc_info=exc)
            self._refuse(500)
        elif self.phase == _OPEN:
            logger.exception("error in ASGI app on WebSocket %s", path)
            if self.session is not None and self.session.open:
                self._local_close(INTERNAL_ERROR)
            else:
                self._start_close_timer()
        else:
            logger.exception("error in ASGI app on WebSocket %s", path)
            self._close_transport()

    def _app_returned(self) -> None:
        if self.phase == _CONNECTING:
            logger.debug("WebSocket %s: the app returned without accepting; refused", self.scope.get("path"))
            self._refuse(403)
        elif self.phase == _RESPONSE:
            self._close_transport()  # the denial response was left unfinished
        elif self.phase == _OPEN:
            session = self.session
            if session is not None and session.open:
                self._local_close(NORMAL)
            elif not self.transport_closed:
                self._start_close_timer()

    def _refuse(self, status: int) -> None:
        """Answer the handshake with a plain HTTP error and hang up."""
        self.phase = _DONE
        if not self.transport_closed:
            body = (http.HTTPStatus(status).phrase + "\n").encode("ascii")
            self._write(_http_response(self.h11, self.ctx, status,
                                       [(b"content-type", b"text/plain; charset=utf-8")], body))
            self._close_transport()
        self._handshake_done(status)
        self._deliver({"type": "websocket.disconnect", "code": ABNORMAL, "reason": ""})

    def _handshake_done(self, status: int) -> None:
        """Report the handshake to the per-request observers (access log)."""
        self.status = status
        self.ctx.count_request()
        observers = self.ctx.observers
        if observers:
            duration = time.perf_counter() - self.started_at
            for observer in observers:
                try:
                    observer(self.scope, status, 0, duration)
                except Exception:
                    logger.debug("request observer failed on a websocket scope", exc_info=True)

    async def receive(self) -> dict[str, Any]:
        if not self.connect_sent:
            self.connect_sent = True
            return _CONNECT
        inbox = self.inbox
        while not inbox:
            if self.disconnect is not None:
                return self.disconnect  # asked again after the end: same answer
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        message = inbox.popleft()
        data = message.get("text")
        if data is None:
            data = message.get("bytes")
        if data is not None:
            self.inbox_bytes -= len(data)
            if self.read_paused:
                self._update_reading()
        return message

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        phase = self.phase
        if phase == _OPEN:
            session = self.session
            assert session is not None
            if kind == "websocket.send":
                if not session.open or self.transport_closed:
                    raise ClientDisconnected("the WebSocket is closed")
                text = message.get("text")
                data = message.get("bytes") if text is None else text
                if data is None or (text is not None and message.get("bytes") is not None):
                    raise RuntimeError("websocket.send needs exactly one of 'bytes' or 'text'")
                out = session.send_message(data)
                self.bytes_sent += len(out)
                self.transport.write(out)
                if self.write_paused:
                    await self._drain()
                return
            if kind == "websocket.close":
                if session.open and not self.transport_closed:
                    self._local_close(message.get("code") or NORMAL, _reason(message.get("reason")))
                return
            raise RuntimeError(f"unexpected ASGI message {kind!r} on an open WebSocket")
        if phase == _CONNECTING:
            if kind == "websocket.accept":
                self._accept(message)
                return
            if kind == "websocket.close":
                self._refuse(403)
                return
            if kind == "websocket.http.response.start":
                status = message["status"]
                if not isinstance(status, int) or not 100 <= status <= 599 or status == 101:
                    raise RuntimeError(f"invalid denial response status {status!r}")
                self.response_status = status
                self.response_headers = check_headers(message.get("headers") or ())
                self.phase = _RESPONSE
                return
            raise RuntimeError(
                f"expected websocket.accept, websocket.close or websocket.http.response.start, got {kind!r}"
            )
        if phase == _RESPONSE:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"expected websocket.http.response.body, got {kind!r}")
            self._denial_body(bytes(message.get("body", b"")), bool(message.get("more_body", False)))
            if self.write_paused:
                await self._drain()
            return
        # _DONE: refused, denied, or the connection is gone.
        if kind == "websocket.close":
            return
        raise ClientDisconnected("the WebSocket is closed")

    def _accept(self, message: dict[str, Any]) -> None:
        if self.transport_closed:
            raise ClientDisconnected("the client went away before the handshake completed")
        settings = self.settings
        data, extensions = accept_response(
            self.handshake,
            subprotocol=message.get("subprotocol"),
            app_headers=check_headers(message.get("headers") or ()),
            default_headers=self.ctx.default_headers,
            deflate=settings.per_message_deflate,
        )
        session = WebSocketSession(extensions, settings.max_message_size)
        self.session = session
        self.phase = _OPEN
        self._write(data)
        self._handshake_done(101)
        if self.early:
            early = bytes(self.early)
            self.early.clear()
            self._after_session(session, session.receive_data(early))
        self._update_reading()
        self._schedule_ping()
        if self.shutdown_requested:
            self._local_close(settings.shutdown_code)

    def _denial_body(self, body: bytes, more: bool) -> None:
        if self.transport_closed:
            raise ClientDisconnected("the client went away before the denial response")
        headers = self.response_headers
        if self.status == 0:
            self._write(_http_response(self.h11, self.ctx, self.response_status, headers, body, more=more))
            self._handshake_done(self.response_status)
        else:
            out = self.h11.send(h11.Data(data=body)) if body else b""
            if not more:
                out = (out or b"") + (self.h11.send(h11.EndOfMessage()) or b"")
            self._write(out or b"")
        if not more:
            self.phase = _DONE
            self._close_transport()
            self._deliver({"type": "websocket.disconnect", "code": ABNORMAL, "reason": ""})

    async def _drain(self) -> None:
        while self.write_paused and not self.transport_closed:
            self._drain_waiter = self.loop.create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None


def _reason(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)
