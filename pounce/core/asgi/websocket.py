"""The ASGI ``websocket`` cycle, whatever protocol carries the WebSocket.

:class:`WebSocketStream` runs the app through the phases of the spec —
CONNECTING (the handshake waits for ``websocket.accept``, ``websocket.close``
or a denial response), OPEN (messages both ways), RESPONSE (a denial body
being sent), DONE — with the frames handled by the sans-I/O
:class:`~pounce.core.protocol.websocket.WebSocketSession`. The connection
that owns it (an upgraded HTTP/1.1 connection, or an HTTP/2 stream opened by
extended CONNECT) moves bytes through the :class:`WebSocketOwner` interface.
Keep-alive pings and the close linger are timers of the stream, so they
work the same on every protocol.

Flow control: a peer that does not read pauses the app inside ``send`` (and
the owner stops reading from that peer too, so its pings cannot pile up
pongs); an app that does not call ``receive`` fast enough stops reading once
``INBOX_HIGH_WATER`` bytes or ``INBOX_MAX_MESSAGES`` messages wait for it.
"""

from __future__ import annotations

import asyncio
import http
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from pounce.core.asgi.stream import ClientDisconnected
from pounce.core.protocol.websocket import (
    ABNORMAL,
    INTERNAL_ERROR,
    NORMAL,
    Handshake,
    WebSocketSession,
    check_headers,
    negotiate,
)

if TYPE_CHECKING:
    from pounce.core.asgi.context import AppContext

__all__ = ["WebSocketOwner", "WebSocketStream"]

logger = logging.getLogger("pounce.websocket")

INBOX_HIGH_WATER = 65536
INBOX_MAX_MESSAGES = 256
# After we send a close frame, how long to wait for the peer's before hanging up.
CLOSE_TIMEOUT = 5.0

_CONNECTING, _OPEN, _RESPONSE, _DONE = range(4)
_CONNECT = {"type": "websocket.connect"}


class WebSocketOwner(Protocol):
    """What the carrying connection does for a WebSocket stream."""

    write_paused: bool

    def accept(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Accept the handshake with the negotiated headers (HTTP/1.1: 101)."""

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, more: bool) -> None:
        """An HTTP response to the handshake instead (a denial, or pounce's
        own refusal); the first call has the head, later ones only ``body``."""

    def write(self, data: bytes) -> None:
        """WebSocket frames to the peer."""

    def close(self) -> None:
        """Close after what was written (HTTP/1.1: the TCP connection)."""

    def set_reading(self, on: bool) -> None:
        """Read from the peer or stop (flow control)."""

    async def drain(self) -> None:
        """Wait until the peer reads again (or is gone)."""

    def done(self) -> None:
        """The stream is over: the socket closed and the app returned."""


class WebSocketStream:
    """One WebSocket: the ASGI app's ``receive``/``send``, and the session."""

    def __init__(self, owner: WebSocketOwner, ctx: AppContext, scope: dict[str, Any], handshake: Handshake,
                 early: bytes = b"") -> None:
        self.owner = owner
        self.ctx = ctx
        self.settings = ctx.websocket
        self.loop: asyncio.AbstractEventLoop = ctx.loop  # type: ignore[assignment]
        self.scope = scope
        self.handshake = handshake
        self.session: WebSocketSession | None = None
        self.phase = _CONNECTING
        # A client must wait for the handshake's answer before sending frames;
        # what it sent anyway is kept (bounded) and parsed once the app accepts.
        self.early = bytearray(early)
        self.inbox: deque[dict[str, Any]] = deque()
        self.inbox_bytes = 0
        self.disconnect: dict[str, Any] | None = None  # set once the socket is over
        self.connect_sent = False
        self.closed = False  # the owner's transport (or stream) is gone
        self.task: asyncio.Task[None] | None = None
        self.task_done = False
        self.reading = True
        self.shutdown_requested = False
        self.started_at = time.perf_counter()
        self.status = 0
        self.bytes_sent = 0
        self.response_status = 0
        self.response_headers: list[tuple[bytes, bytes]] = []
        self._waiter: asyncio.Future[None] | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._pongs_at_ping = 0

    def start(self) -> None:
        self.task = self.loop.create_task(self._run(self.ctx.app))
        self.update_reading()

    # -- fed by the owner ---------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        session = self.session
        if session is not None:
            self._after_session(session, session.receive_data(data))
        elif self.phase == _CONNECTING:
            self.early += data
            self.update_reading()

    def receive_eof(self) -> None:
        session = self.session
        if session is not None:
            self._after_session(session, session.receive_data(None))
        else:
            self._deliver({"type": "websocket.disconnect", "code": ABNORMAL, "reason": ""})

    def connection_lost(self) -> None:
        self.closed = True
        self._cancel_timers()
        if self.disconnect is None:
            session = self.session
            if session is not None:
                for message in session.receive_data(None):
                    self._deliver(message)
            if self.disconnect is None:
                self._deliver({"type": "websocket.disconnect", "code": ABNORMAL, "reason": ""})
        self._forget_if_done()

    def shutdown(self) -> None:
        """Graceful shutdown: close an open socket with the shutdown code (1012
        by default); a handshake still waiting for the app is closed that way
        as soon as the app accepts it."""
        self.shutdown_requested = True
        if self.phase == _OPEN and self.session is not None and self.session.open:
            self._local_close(self.settings.shutdown_code)

    def abort(self) -> None:
        """A forced stop: cancel the app; the owner drops the connection."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self._cancel_timers()
        self.closed = True

    # -- session plumbing ---------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if data and not self.closed:
            self.owner.write(data)

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
            self.update_reading()

    def update_reading(self) -> None:
        """Read only while the app keeps up and the peer keeps reading."""
        if self.closed:
            return
        pause = (
            self.owner.write_paused
            or self.inbox_bytes > INBOX_HIGH_WATER
            or len(self.inbox) > INBOX_MAX_MESSAGES
            or len(self.early) > INBOX_HIGH_WATER
        )
        if pause == self.reading:
            self.reading = not pause
            self.owner.set_reading(not pause)

    # -- timers -----------------------------------------------------------------------

    def _schedule_ping(self) -> None:
        interval = self.settings.ping_interval
        if interval > 0 and not self.closed:
            self._ping_timer = self.loop.call_later(interval, self._ping)

    def _ping(self) -> None:
        self._ping_timer = None
        session = self.session
        if session is None or not session.open or self.closed:
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
        if session is None or self.closed:
            return
        if not self.reading or self.owner.write_paused:
            # Flow control is holding the pong (unread) or the ping (unsent):
            # that is a busy peer, not a dead one. Look again later.
            self._pong_timer = self.loop.call_later(self.settings.ping_timeout, self._ping_timed_out)
            return
        logger.debug("WebSocket %s: no pong within %ss, closing", self.scope.get("client"),
                     self.settings.ping_timeout)
        self._write(session.close(INTERNAL_ERROR, "keepalive ping timeout"))
        self._deliver(session.disconnect_message())
        session.reported = True
        self._close_transport()

    def _start_close_timer(self) -> None:
        if self._close_timer is None and not self.closed:
            self._close_timer = self.loop.call_later(CLOSE_TIMEOUT, self._close_transport)

    def _cancel_timers(self) -> None:
        for timer in (self._ping_timer, self._pong_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        self._ping_timer = self._pong_timer = self._close_timer = None

    # -- closing ------------------------------------------------------------------------

    def _close_transport(self) -> None:
        self._cancel_timers()
        if not self.closed:
            self.owner.close()  # flushes what is buffered, then closes

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
        if self.closed and self.task_done:
            self.owner.done()

    # -- ASGI ---------------------------------------------------------------------------

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
            elif not self.closed:
                self._start_close_timer()

    def _refuse(self, status: int) -> None:
        """Answer the handshake with a plain HTTP error and hang up."""
        self.phase = _DONE
        if not self.closed:
            body = (http.HTTPStatus(status).phrase + "\n").encode("ascii")
            self.owner.respond(status, [(b"content-type", b"text/plain; charset=utf-8")], body, False)
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
            if not self.reading:
                self.update_reading()
        return message

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        phase = self.phase
        if phase == _OPEN:
            session = self.session
            assert session is not None
            if kind == "websocket.send":
                if not session.open or self.closed:
                    raise ClientDisconnected("the WebSocket is closed")
                text = message.get("text")
                data = message.get("bytes") if text is None else text
                if data is None or (text is not None and message.get("bytes") is not None):
                    raise RuntimeError("websocket.send needs exactly one of 'bytes' or 'text'")
                out = session.send_message(data)
                self.bytes_sent += len(out)
                self.owner.write(out)
                if self.owner.write_paused:
                    await self._drain()
                return
            if kind == "websocket.close":
                if session.open and not self.closed:
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
            if self.owner.write_paused:
                await self._drain()
            return
        # _DONE: refused, denied, or the connection is gone.
        if kind == "websocket.close":
            return
        raise ClientDisconnected("the WebSocket is closed")

    def _accept(self, message: dict[str, Any]) -> None:
        if self.closed:
            raise ClientDisconnected("the client went away before the handshake completed")
        settings = self.settings
        headers, extensions = negotiate(
            self.handshake,
            subprotocol=message.get("subprotocol"),
            app_headers=check_headers(message.get("headers") or ()),
            deflate=settings.per_message_deflate,
        )
        session = WebSocketSession(extensions, settings.max_message_size)
        self.session = session
        self.phase = _OPEN
        self.owner.accept(headers)
        self._handshake_done(101)
        if self.early:
            early = bytes(self.early)
            self.early.clear()
            self._after_session(session, session.receive_data(early))
        self.update_reading()
        self._schedule_ping()
        if self.shutdown_requested:
            self._local_close(settings.shutdown_code)

    def _denial_body(self, body: bytes, more: bool) -> None:
        if self.closed:
            raise ClientDisconnected("the client went away before the denial response")
        if self.status == 0:
            self.owner.respond(self.response_status, self.response_headers, body, more)
            self._handshake_done(self.response_status)
        else:
            self.owner.respond(0, [], body, more)
        if not more:
            self.phase = _DONE
            self._close_transport()
            self._deliver({"type": "websocket.disconnect", "code": ABNORMAL, "reason": ""})

    async def _drain(self) -> None:
        while self.owner.write_paused and not self.closed:
            await self.owner.drain()


def _reason(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)
