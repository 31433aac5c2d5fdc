"""The events a protocol connection emits, whichever parser produced them.

HTTP/1.1 reads a common request head with h1fast and anything else with h11;
HTTP/2 reads HEADERS frames with h2. All of them report a request as the
same :class:`Request`, its body as :class:`Data` and its end as
:class:`EndOfMessage`, so the layers above never know which parser ran.
``stream_id`` tells a multiplexed protocol's streams apart (HTTP/1.1: 0).

Plain classes with ``__slots__`` rather than dataclasses: one of each is made
per request (or per body piece) on the hot path.
"""

from __future__ import annotations

__all__ = [
    "CHUNKED", "CONTENT_LENGTH", "HTTP10", "END", "PAUSED", "CONNECTION_CLOSED",
    "Request", "Data", "EndOfMessage", "StreamReset", "ConnectionClosed", "Paused",
    "ProtocolError", "LocalProtocolError",
]

# How a message body is delimited.
CONTENT_LENGTH = "content-length"  # exactly ``content_length`` bytes (0: no body)
CHUNKED = "chunked"
HTTP10 = "http/1.0"  # a response body that ends when the connection does
STREAM = "stream"  # a multiplexed protocol's stream ends the body (HTTP/2, HTTP/3)


class Request:
    """A request head.

    ``method``, ``target`` and ``http_version`` are bytes as on the wire
    (``b"1.1"``, ``b"2"``); ``headers`` is a list of ``(lowercase name,
    value)`` pairs in order. ``framing`` and ``content_length`` say how the
    body is delimited; ``keep_alive`` whether the client lets the connection
    carry another request (HTTP/1.x). ``expect_continue``: the client waits
    for ``100 Continue`` before sending its body. ``trailers``: the client
    accepts response trailers (``TE: trailers``). ``upgrade``: the
    ``Upgrade`` header (HTTP/1.1), or the ``:protocol`` of an extended
    CONNECT (HTTP/2). ``consumed``: bytes of the input the head took (h1fast).
    """

    __slots__ = ("method", "target", "http_version", "headers", "framing", "content_length",
                 "keep_alive", "consumed", "expect_continue", "trailers", "upgrade", "stream_id")

    def __init__(self, method: bytes, target: bytes, http_version: bytes,
                 headers: list[tuple[bytes, bytes]], framing: str, content_length: int,
                 keep_alive: bool, consumed: int = 0, *, expect_continue: bool = False,
                 trailers: bool = False, upgrade: bytes | None = None, stream_id: int = 0) -> None:
        self.method = method
        self.target = target
        self.http_version = http_version
        self.headers = headers
        self.framing = framing
        self.content_length = content_length
        self.keep_alive = keep_alive
        self.consumed = consumed
        self.expect_continue = expect_continue
        self.trailers = trailers
        self.upgrade = upgrade
        self.stream_id = stream_id

    def __repr__(self) -> str:
        return (f"Request({self.method!r}, {self.target!r}, {self.http_version!r}, "
                f"{len(self.headers)} headers, {self.framing}={self.content_length}, "
                f"keep_alive={self.keep_alive}, stream_id={self.stream_id})")


class Data:
    """A piece of request body."""

    __slots__ = ("data", "stream_id")

    def __init__(self, data: bytes, stream_id: int = 0) -> None:
        self.data = data
        self.stream_id = stream_id

    def __repr__(self) -> str:
        return f"Data({len(self.data)} bytes, stream_id={self.stream_id})"


class EndOfMessage:
    """The request body is complete; ``trailers`` are its trailer fields."""

    __slots__ = ("trailers", "stream_id")

    def __init__(self, trailers: list[tuple[bytes, bytes]] | None = None, stream_id: int = 0) -> None:
        self.trailers = trailers or []
        self.stream_id = stream_id

    def __repr__(self) -> str:
        return f"EndOfMessage({len(self.trailers)} trailers, stream_id={self.stream_id})"


class StreamReset:
    """The peer abandoned one stream of a multiplexed connection."""

    __slots__ = ("stream_id", "code")

    def __init__(self, stream_id: int, code: int = 0) -> None:
        self.stream_id = stream_id
        self.code = code

    def __repr__(self) -> str:
        return f"StreamReset({self.stream_id}, code={self.code})"


class ConnectionClosed:
    """The peer will send nothing more (end of file)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ConnectionClosed()"


class Paused:
    """Input arrived behind a complete request and is held until the
    response is done (pipelining): stop reading meanwhile."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Paused()"


# Events without data, one instance each.
END = EndOfMessage()
CONNECTION_CLOSED = ConnectionClosed()
PAUSED = Paused()


class ProtocolError(Exception):
    """The peer broke the protocol: answer ``status`` (HTTP/1.x) and close.

    ``status`` is the HTTP status to answer with (400 unless the error says
    better: 413, 414, 431, 505, ...).
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class LocalProtocolError(RuntimeError):
    """The app asked for something the protocol cannot send (a header value
    with CR/LF, more body than its Content-Length, ...). Raised into the app."""
