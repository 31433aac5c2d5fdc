"""One ASGI ``http`` request cycle, whatever protocol carries it.

:class:`HttpStream` is the app's ``receive`` and ``send`` for one request.
The connection that owns it (an HTTP/1.1 connection runs one at a time, an
HTTP/2 connection many, keyed by stream id) feeds it the request body as it
arrives (:meth:`~HttpStream.feed`, :meth:`~HttpStream.feed_end`,
:meth:`~HttpStream.on_disconnect`) and turns what the app sends into its
protocol's frames through the small :class:`StreamOwner` interface. So the
ASGI rules live here once: message order, the response held back until the
first body message (so a failing app can still get a clean 500), trailers,
``http.disconnect``, 100-continue on the first ``receive``, backpressure in
both directions, ``timeout_request`` and the request observers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from pounce.core.asgi.eager import start_task

if TYPE_CHECKING:
    from pounce.core.asgi.context import AppContext
    from pounce.core.protocol.events import Request

__all__ = ["BODY_HIGH_WATER", "ClientDisconnected", "HttpStream", "StreamOwner"]

logger = logging.getLogger("pounce.worker")

# Ask the owner to stop reading while this much request body waits for the app.
BODY_HIGH_WATER = 65536
_NO_BODY_STATUS = frozenset({204, 304})
_DISCONNECT = {"type": "http.disconnect"}


# Lowercase header names apps have sent: a header list made only of these, as
# (bytes, bytes) tuples, is taken as it is (bounded; starts over when full).
_LOWER_NAMES: set[bytes] = set()
_LOWER_NAMES_MAX = 512


def _response_headers(headers: Any) -> list[tuple[bytes, bytes]]:
    """The app's response headers as a list of ``(lowercase name, value)``
    bytes tuples: a copy of the list when it is one already (the common
    case, checked without making a tuple), else a converted one."""
    if headers.__class__ is not list and headers.__class__ is not tuple:
        headers = list(headers)  # any iterable, read once
    names = _LOWER_NAMES
    for pair in headers:
        if pair.__class__ is not tuple:
            break
        name, value = pair
        if name.__class__ is not bytes or value.__class__ is not bytes or name not in names:
            break
    else:
        return list(headers)
    converted = [(bytes(n).lower(), bytes(v)) for n, v in headers]
    if len(names) >= _LOWER_NAMES_MAX:
        names.clear()
    names.update(n for n, _ in converted)
    return converted


class ClientDisconnected(OSError):
    """``send()`` on a connection the client has gone from (ASGI HTTP 2.4).

    Raised into the app, which may clean up; never logged as an error.
    """


class StreamOwner(Protocol):
    """What a protocol connection does for the streams it carries.

    ``send_*`` methods that return True mean "the peer is not reading (or the
    flow-control window is shut): await :meth:`drain` before sending more".
    """

    def send_head(self, stream: HttpStream, status: int, headers: list[tuple[bytes, bytes]], body: bytes,
                  more: bool, trailers: bool) -> bool:
        """The response head with its first body piece (``more``: more follows;
        ``trailers``: trailers will end the body)."""

    def send_body(self, stream: HttpStream, body: bytes, more: bool) -> bool:
        """A further body piece; without ``more`` (and trailers) the end."""

    def send_trailers(self, stream: HttpStream, trailers: list[tuple[bytes, bytes]]) -> None:
        """End the body with trailer fields."""

    def send_continue(self, stream: HttpStream) -> None:
        """``100 Continue``: the app is asking for the body."""

    def send_error(self, stream: HttpStream, status: int) -> None:
        """A plain error response of pounce's own (500, 504) that ends the stream."""

    def body_consumed(self, stream: HttpStream, size: int) -> None:
        """The app took ``size`` bytes of body: read (or open the window) again."""

    async def drain(self, stream: HttpStream) -> None:
        """Wait until the stream may send again (or is gone)."""

    async def send_file(self, stream: HttpStream, status: int, headers: list[tuple[bytes, bytes]],
                        file: BinaryIO, offset: int, count: int) -> None:
        """The whole response: the head (with Content-Length), then ``count``
        bytes of ``file`` from ``offset`` (``http.response.pathsend``), by
        the cheapest means the transport has (``sendfile(2)`` on plain TCP);
        the caller opens and closes the file. Only owners whose connection
        info advertises pathsend are asked."""

    def abort(self, stream: HttpStream) -> None:
        """The response cannot be completed: end the stream abruptly (close
        the connection, reset the stream)."""

    def stream_done(self, stream: HttpStream) -> None:
        """The app has returned and the stream is over. ``stream.task`` is
        None when this comes from inside :meth:`HttpStream.start` (an app that
        finished in its first step): the owner should not start another
        stream from here then, or pipelined requests would nest."""


class HttpStream:
    """One ASGI ``http`` request: the app's ``receive`` and ``send``."""

    __slots__ = (
        "owner", "ctx", "scope", "request", "stream_id", "task", "started_at", "is_head",
        "body", "buffered", "received", "too_large", "body_complete", "body_delivered",
        "disconnected", "response_started", "headers_sent", "response_complete", "trailers_expected",
        "body_ended", "status", "response_headers", "trailers", "bytes_sent", "failed", "_waiter", "_timer",
    )

    def __init__(self, owner: StreamOwner, ctx: AppContext, scope: dict[str, Any], request: Request) -> None:
        self.owner = owner
        self.ctx = ctx
        self.scope = scope
        self.request = request
        self.stream_id = request.stream_id
        self.task: asyncio.Task[None] | None = None
        # (Only request observers read the duration.)
        self.started_at = time.perf_counter() if ctx.observers else 0.0
        self.is_head = request.method == b"HEAD"
        self.body: list[bytes] = []
        self.buffered = 0  # bytes waiting for the app
        self.received = 0  # bytes of body so far (for max_request_body_size)
        self.too_large = False
        self.body_complete = False
        self.body_delivered = False
        self.disconnected = False
        self.response_started = False  # http.response.start seen
        self.headers_sent = False  # the head is out (with the first body message)
        self.response_complete = False
        self.trailers_expected = False
        self.body_ended = False  # the last body message is out, trailers pending
        self.status = 0
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.bytes_sent = 0
        self.failed = False  # the app raised after its response was complete
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self, eager: bool = True) -> None:
        """Run the app for this request in a task of its own, started eagerly
        (:mod:`.eager`): an app that does not wait has answered, and the
        stream is done (:meth:`StreamOwner.stream_done` called, with
        ``task`` still None), by the time this returns. So an owner starts
        a stream once it has fed it what it has (body, end), and must take
        ``send_*`` and ``stream_done`` calls from inside ``start``;
        ``eager=False`` schedules the task instead, for an owner that cannot."""
        ctx = self.ctx
        coro = self.run(ctx.app)
        if eager:
            self.task = start_task(ctx.loop, coro)  # type: ignore[arg-type]
            return
        tasks = ctx.tasks
        if tasks is None or tasks.loop is not ctx.loop:
            tasks = ctx.tasks_for(ctx.loop)  # type: ignore[arg-type]
        self.task = tasks.schedule(coro)

    # -- fed by the owner ---------------------------------------------------------

    def feed(self, data: bytes) -> bool:
        """Queue body bytes for the app; True when the owner should stop
        reading until :meth:`StreamOwner.body_consumed`. Over
        ``max_request_body_size`` sets ``too_large`` (the owner answers 413)."""
        size = len(data)
        max_body = self.ctx.max_body
        if max_body:
            self.received += size
            if self.received > max_body:
                self.too_large = True
                return False
        self.body.append(data)
        self.buffered += size
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return self.buffered > BODY_HIGH_WATER

    def feed_end(self) -> None:
        self.body_complete = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_disconnect(self) -> None:
        """The client is gone (or the stream was reset): the app's next
        ``receive`` is ``http.disconnect`` and its next ``send`` raises."""
        self.disconnected = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- running the app ------------------------------------------------------------

    async def run(self, app: Any) -> None:
        ctx = self.ctx
        if ctx.request_timeout:
            self._timer = ctx.loop.call_later(ctx.request_timeout, self.on_timeout)  # type: ignore[union-attr]
        try:
            if not self.disconnected:
                # (A request refused while still being read, in the same data
                # as its head, never reaches the app.)
                await app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            if not (isinstance(exc, ClientDisconnected) or self.disconnected):
                logger.exception("error in ASGI app: %s %s", self.scope.get("method"), self.scope.get("path"))
            self._app_ended()
            self.failed = True
        else:
            if not self.response_complete:
                self._app_ended()
        finally:
            if self._timer is not None:
                self._timer.cancel()
            ctx.requests_served += 1
            if ctx.max_requests and ctx.requests_served == ctx.max_requests and ctx.on_request_limit:
                ctx.on_request_limit()
            if ctx.observers:
                self._report()
            self.owner.stream_done(self)

    def _app_ended(self) -> None:
        if not self.headers_sent:
            # Nothing is on the wire yet: the response can still be replaced.
            self.send_error(500)
        elif not self.response_complete:
            # Part of a response is on the wire: it cannot be finished, so the
            # only honest end is an abrupt one.
            self.owner.abort(self)

    def send_error(self, status: int) -> None:
        """Answer with a plain error of pounce's own, unless the client is gone."""
        if not self.disconnected:
            self.status = status
            self.response_started = self.headers_sent = self.response_complete = True
            self.owner.send_error(self, status)

    def on_timeout(self) -> None:
        """``timeout_request`` ran out: 504 when no response has started, else
        end the response abruptly; cancel the app either way."""
        self._timer = None
        if self.response_complete:
            return
        logger.warning("request timed out after %.1f s (timeout_request): %s %s",
                       self.ctx.request_timeout, self.scope.get("method"), self.scope.get("path"))
        if not self.headers_sent:
            self.send_error(504)
        else:
            self.owner.abort(self)
        self.disconnected = True
        if self.task is not None:
            self.task.cancel()

    def _report(self) -> None:
        """The request observers (counted already: see ``count_request``)."""
        observers = self.ctx.observers
        if observers:
            duration = time.perf_counter() - self.started_at
            for observer in observers:
                try:
                    observer(self.scope, self.status, self.bytes_sent, duration)
                except Exception:
                    logger.exception("request observer failed")

    # -- ASGI -------------------------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        if self.request.expect_continue and not self.response_started and not self.body_complete:
            # The client holds its body back until told to go on; tell it now
            # that the app asks for the body, not before (and once).
            self.request.expect_continue = False
            self.owner.send_continue(self)
        while not (
            self.disconnected
            or self.response_complete
            or self.body
            or (self.body_complete and not self.body_delivered)
        ):
            self._waiter = self.ctx.loop.create_future()  # type: ignore[union-attr]
            await self._waiter
            self._waiter = None
        if self.disconnected or self.response_complete:
            return _DISCONNECT
        body = self.body
        if body:
            chunk = body[0] if len(body) == 1 else b"".join(body)
            body.clear()
            size = self.buffered
            self.buffered = 0
            self.owner.body_consumed(self, size)
        else:
            chunk = b""
        if self.body_complete:
            self.body_delivered = True
        return {"type": "http.request", "body": chunk, "more_body": not self.body_complete}

    async def send(self, message: dict[str, Any]) -> None:
        if self.disconnected:
            raise ClientDisconnected("the client has disconnected")
        kind = message["type"]
        if kind == "http.response.body":
            if not self.response_started:
                raise RuntimeError("http.response.body sent before http.response.start")
            if self.response_complete or self.body_ended:
                return  # the spec: messages after the response are ignored
            body = message.get("body", b"")
            more = message.get("more_body", False)
            owner = self.owner
            # (The owner raises before anything is written when the protocol
            # cannot send this: the state below changes only after it.)
            if self.headers_sent:
                wait = owner.send_body(self, body, more)
            else:
                wait = owner.send_head(self, self.status, self.response_headers, body, more,
                                       self.trailers_expected)
                self.headers_sent = True
            if body and not self.is_head and self.status not in _NO_BODY_STATUS:
                self.bytes_sent += len(body)
            if not more:
                if self.trailers_expected:
                    self.body_ended = True
                else:
                    self.response_complete = True
                    waiter = self._waiter
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)
            elif wait:
                await owner.drain(self)
            return
        if kind == "http.response.start":
            if self.response_started:
                raise RuntimeError("http.response.start sent twice")
            status = message["status"]
            if not isinstance(status, int) or not 200 <= status <= 599:
                raise RuntimeError(f"invalid status {status!r}")
            self.response_started = True
            self.status = status
            self.response_headers = _response_headers(message.get("headers", ()))
            if message.get("trailers", False):
                self.trailers_expected = True
            return
        if kind == "http.response.pathsend":
            if not self.response_started:
                raise RuntimeError("http.response.pathsend before http.response.start")
            if self.response_complete or self.body_ended:
                return
            if self.headers_sent:
                raise RuntimeError("http.response.pathsend after http.response.body")
            await self._send_path(message)
            return
        if kind == "http.response.trailers":
            if not self.trailers_expected or self.response_complete:
                raise RuntimeError("http.response.trailers without trailers=True in http.response.start")
            if not self.body_ended:
                raise RuntimeError("http.response.trailers before the last http.response.body")
            fields = [(bytes(n).lower(), bytes(v)) for n, v in message.get("headers", ())]
            if self.trailers:
                fields = self.trailers + fields
            if message.get("more_trailers", False):
                self.trailers = fields  # sent with the last trailers message
                return
            self.trailers = None
            self.owner.send_trailers(self, fields)
            self.response_complete = True
            self._wake()
            return
        raise RuntimeError(f"unexpected ASGI message {kind!r} on an http connection")

    async def _send_path(self, message: dict[str, Any]) -> None:
        """``http.response.pathsend``: the file at ``path`` is the whole body
        (pounce also takes ``offset`` and ``count``, for byte ranges: its
        extension says ``"ranges": True``). The length is checked against the
        file before anything is written, so a wrong Content-Length is never
        sent: a mismatch is the app's error (a 500)."""
        path = message["path"]
        offset = int(message.get("offset", 0))
        try:
            file = open(path, "rb")  # noqa: SIM115 - closed below, once the owner is done
        except OSError as exc:
            raise RuntimeError(f"http.response.pathsend: cannot open {path!r}: {exc.strerror}") from None
        with file:
            size = os.fstat(file.fileno()).st_size
            count = message.get("count")
            count = size - offset if count is None else int(count)
            if offset < 0 or count < 0 or offset + count > size:
                raise RuntimeError(f"http.response.pathsend: bytes {offset}+{count} of a {size}-byte file")
            headers = self.response_headers
            declared = [v for n, v in headers if n == b"content-length"]
            if not declared:
                headers = [*headers, (b"content-length", b"%d" % count)]
            elif declared != [b"%d" % count]:
                raise RuntimeError(f"http.response.pathsend: Content-Length {declared[0].decode()!r}, "
                                   f"but the file gives {count} bytes")
            self.headers_sent = True
            await self.owner.send_file(self, self.status, headers, file, offset, count)
        if not self.is_head and self.status not in _NO_BODY_STATUS:
            self.bytes_sent += count
        self.response_complete = True
        self._wake()
