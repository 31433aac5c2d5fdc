"""The ASGI wrapper that compresses responses on their way out.

Per request, before anything is known about the response: one pass over the
request headers for ``Accept-Encoding`` and a cached negotiation. A request
that takes no coding pounce offers (or a HEAD, or not HTTP) goes to the app
with the original ``send``: nothing else happens to it.

Otherwise ``send`` is wrapped and ``http.response.start`` decides: a
response that is not a candidate (status 1xx/204/206/304, a
``Content-Encoding`` or ``Content-Range`` already, ``Cache-Control:
no-transform``, a content type outside the allowlist, a ``Content-Length``
under ``min_size``) passes through untouched from there on. A candidate's
start is held until its first body message: a body complete in one message
is compressed whole (and sent as it is when under ``min_size`` or when
compressing did not make it smaller); a streamed body is compressed message
by message, each flushed, without ``Content-Length``. ``pathsend`` (a file
the server sends itself) passes through uncompressed.
"""

from __future__ import annotations

from typing import Any

from pounce.plugins.compression.codecs import Codec, Stream
from pounce.plugins.compression.negotiate import Negotiator

_ACCEPT = b"accept-encoding"
_NOT_CANDIDATE_STATUS = frozenset({204, 206, 304})
_TYPES_CACHE = 256

# _Responder states.
_WAIT, _HELD, _STREAM, _PASS = 0, 1, 2, 3


class TypeFilter:
    """``filter(content_type_value) -> bool`` against patterns like
    ``text/*``, ``application/json`` and ``application/*+json``."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        exact: set[bytes] = set()
        wild: list[tuple[bytes, bytes]] = []
        for pattern in patterns:
            low = pattern.strip().lower().encode("ascii")
            if b"*" not in low:
                exact.add(low)
            else:
                kind, _, sub = low.partition(b"/")
                wild.append((kind + b"/", sub[1:]))  # "text/*" -> (b"text/", b"")
        self._exact = frozenset(exact)
        self._wild = tuple(wild)
        self._cache: dict[bytes, bool] = {}

    def __call__(self, value: bytes) -> bool:
        try:
            return self._cache[value]
        except KeyError:
            pass
        base = value.split(b";", 1)[0].strip().lower()
        ok = base in self._exact or any(
            base.startswith(prefix) and base.endswith(suffix) and len(base) > len(prefix) + len(suffix)
            for prefix, suffix in self._wild)
        if len(self._cache) >= _TYPES_CACHE:
            self._cache.clear()
        self._cache[value] = ok
        return ok


class Compression:
    """``Compression(app, codecs, min_size, types)``; ``codecs`` in the
    server's order of preference."""

    def __init__(self, app: Any, codecs: list[Codec], min_size: int, types: TypeFilter) -> None:
        self.app = app
        self.codecs = {codec.name: codec for codec in codecs}
        self.negotiate = Negotiator([codec.name for codec in codecs])
        self.min_size = min_size
        self.types = types

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] != "HEAD":
            for name, value in scope["headers"]:
                if name == _ACCEPT:
                    coding = self.negotiate(value)
                    if coding is not None:
                        send = _Responder(send, self.codecs[coding], self).send
                    break
        await self.app(scope, receive, send)

    def candidate(self, start: dict[str, Any]) -> bool:
        """Whether a response with this start may be compressed."""
        status = start["status"]
        if status < 200 or status in _NOT_CANDIDATE_STATUS:
            return False
        content_type = None
        for name, value in start.get("headers", ()):
            name = bytes(name).lower()
            if name == b"content-type":
                content_type = value
            elif name == b"content-encoding" or name == b"content-range":
                return False
            elif name == b"cache-control":
                if b"no-transform" in bytes(value).lower():
                    return False
            elif name == b"content-length":
                try:
                    if int(value) < self.min_size:
                        return False
                except ValueError:
                    return False  # not ours to fix; the core will refuse it
        return content_type is not None and self.types(bytes(content_type))


class _Responder:
    """The ``send`` of one response being compressed (see the module)."""

    __slots__ = ("_send", "_codec", "_owner", "_start", "_stream", "_state")

    def __init__(self, send: Any, codec: Codec, owner: Compression) -> None:
        self._send = send
        self._codec = codec
        self._owner = owner
        self._start: dict[str, Any] | None = None
        self._stream: Stream | None = None
        self._state = _WAIT

    async def send(self, message: dict[str, Any]) -> None:
        state = self._state
        if state == _PASS:
            await self._send(message)
            return
        kind = message["type"]
        if state == _STREAM:
            if kind == "http.response.body":
                more = message.get("more_body", False)
                body = message.get("body", b"")
                stream = self._stream
                assert stream is not None
                data = stream.chunk(body) if more else stream.last(body)
                if not more:
                    self._stream = None
                    self._state = _PASS
                await self._send({"type": "http.response.body", "body": data, "more_body": more})
                return
            await self._send(message)
            return
        if state == _WAIT:
            if kind == "http.response.start":
                headers = message.get("headers", ())
                if not isinstance(headers, (list, tuple)):
                    # Any iterable is allowed; it is read twice here.
                    message = {**message, "headers": list(headers)}
            if kind == "http.response.start" and self._owner.candidate(message):
                self._start = message
                self._state = _HELD
                return
            self._state = _PASS
            await self._send(message)
            return
        # _HELD: the first message after a candidate's start decides.
        start = self._start
        assert start is not None
        self._start = None
        if kind != "http.response.body":
            self._state = _PASS  # pathsend, or something the core will judge
            await self._send(start)
            await self._send(message)
            return
        body = message.get("body", b"")
        if not message.get("more_body", False):
            self._state = _PASS
            if len(body) >= self._owner.min_size:
                compressed = self._codec.whole(body)
                if len(compressed) < len(body):
                    await self._send(self._encoded(start, len(compressed)))
                    await self._send({"type": "http.response.body", "body": compressed})
                    return
            await self._send(start)
            await self._send(message)
            return
        stream = self._stream = self._codec.stream()
        self._state = _STREAM
        await self._send(self._encoded(start, None))
        await self._send({"type": "http.response.body", "body": stream.chunk(body), "more_body": True})

    def _encoded(self, start: dict[str, Any], length: int | None) -> dict[str, Any]:
        """The start message for the compressed representation: its coding,
        its length (or none, for a stream), ``Vary``, and a weak ETag (the
        bytes differ from the identity's, the meaning does not)."""
        headers: list[tuple[bytes, bytes]] = []
        vary = False
        for name, value in start.get("headers", ()):
            low = bytes(name).lower()
            if low == b"content-length":
                continue
            if low == b"etag":
                if value[:1] == b'"':
                    value = b"W/" + bytes(value)
            elif low == b"vary":
                tokens = bytes(value).lower()
                if b"*" not in tokens and b"accept-encoding" not in tokens:
                    value = bytes(value) + b", Accept-Encoding"
                vary = True
            headers.append((name, value))
        if not vary:
            headers.append((b"vary", b"Accept-Encoding"))
        headers.append((b"content-encoding", self._codec.name.encode("ascii")))
        if length is not None:
            headers.append((b"content-length", b"%d" % length))
        return {**start, "headers": headers}
