"""Every response head pounce writes, and the status reasons, in one place.

HTTP/1.1 responses to apps (:func:`render_response_head`, byte-identical to
what h11 would send for the same response: ``tests/unit/test_h1fast_differential.py``
compares them), the plain error responses pounce sends itself
(:func:`error_response`), interim responses (:func:`informational`), chunked
framing and trailers, and the server's default headers rendered once a second
(:class:`DefaultHeaders`). Sans-I/O: bytes out, nothing else.
"""

from __future__ import annotations

import http

from pounce.core.protocol.events import CHUNKED, CONTENT_LENGTH, HTTP10

__all__ = [
    "REASONS", "reason", "ResponseHead", "render_response_head", "header_preamble", "chunk",
    "LAST_CHUNK", "last_chunk", "error_response", "informational", "render_head", "DefaultHeaders",
    "check_fields", "fast_response_head", "render_response_head_full", "STATUS_LINES",
]

REASONS: dict[int, bytes] = {s.value: s.phrase.encode("ascii") for s in http.HTTPStatus}


def reason(status: int) -> bytes:
    """The standard reason phrase (empty for a status without one)."""
    return REASONS.get(status, b"")


_TOKEN = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NAME_CACHE_MAX = 512

_FIELD_BAD = b"\x00\n\x0b\x0c\r"
_OWS = b" \t"
_VALID_RESPONSE_NAMES: dict[bytes, bytes] = {}


class ResponseHead:
    """What :func:`render_response_head` decided.

    ``data`` is the status line and headers; ``framing`` is ``"content-length"``
    (exactly ``content_length`` body bytes may follow: 0 for HEAD, 204 and
    304), ``"chunked"`` (frame each body piece with :func:`chunk`, end with
    :data:`LAST_CHUNK`) or ``"http/1.0"`` (raw body, then close); the
    connection may carry another request afterwards only if ``keep_alive``.
    """

    __slots__ = ("data", "framing", "content_length", "keep_alive")

    def __init__(self, data: bytes, framing: str, content_length: int, keep_alive: bool) -> None:
        self.data = data
        self.framing = framing
        self.content_length = content_length
        self.keep_alive = keep_alive


LAST_CHUNK = b"0\r\n\r\n"


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body; nothing for empty data (an empty chunk
    would end the body)."""
    if not data:
        return b""
    return b"%x\r\n%s\r\n" % (len(data), data)


def render_response_head(
    status: int,
    headers: list[tuple[bytes, bytes]],
    *,
    reason: bytes,
    request_method: bytes,
    request_version: bytes,
    keep_alive: bool,
    preamble: bytes = b"",
) -> ResponseHead:
    """The response head h11 would send, and the body framing it implies.

    ``headers`` are the response headers in order (any name case);
    ``keep_alive`` is the request's (:attr:`~pounce.core.protocol.events.Request.keep_alive`).
    h11 never keeps an HTTP/1.0 connection; here a 1.0 request that asked for
    keep-alive keeps it when the body has a length, and the response says
    ``Connection: keep-alive`` (what ApacheBench ``-k`` and old proxies expect).
    Raises ``ValueError`` where h11 raises ``LocalProtocolError``: a header
    name that is not a token, a value with CR, LF, NUL or surrounding
    whitespace, conflicting Content-Length values, a Transfer-Encoding other
    than chunked. A status outside 200-999 is the caller's to refuse.

    ``preamble`` is header lines rendered once for many responses (a server's
    default headers, ``name: value\r\n`` each), written as if they came
    first in ``headers``: the caller vouches that they are valid and that
    none is Host, Content-Length, Transfer-Encoding or Connection, so they
    take no part in the decisions above (:func:`header_preamble` checks).
    """
    if keep_alive and status != 204 and status != 304 and request_method != b"HEAD":
        line = STATUS_LINES.get(status)
        if line is not None and line[9 + 4:-2] == reason:
            fast = fast_response_head(line, headers, preamble, request_version, -1)
            if fast is not None:
                return ResponseHead(fast[0], CONTENT_LENGTH, fast[1], True)
    return render_response_head_full(status, headers, reason=reason, request_method=request_method,
                                     request_version=request_version, keep_alive=keep_alive, preamble=preamble)


def render_response_head_full(
    status: int,
    headers: list[tuple[bytes, bytes]],
    *,
    reason: bytes,
    request_method: bytes,
    request_version: bytes,
    keep_alive: bool,
    preamble: bytes = b"",
) -> ResponseHead:
    """:func:`render_response_head` by the full route, whatever the headers
    (what the fast route is checked against)."""
    items: list[tuple[bytes, bytes, bytes]] = []  # raw name, lowercase name, value
    seen_length: bytes | None = None
    seen_coding = False
    connection_tokens: list[bytes] = []
    for raw, value in headers:
        name = _VALID_RESPONSE_NAMES.get(raw)
        if name is None:
            if not raw or raw.translate(None, _TOKEN):
                raise ValueError(f"illegal header name {raw!r}")
            name = raw.lower()
            if len(_VALID_RESPONSE_NAMES) < _NAME_CACHE_MAX:
                _VALID_RESPONSE_NAMES[raw] = name
        if value.translate(None, _FIELD_BAD) != value or value.strip(_OWS) != value:
            raise ValueError(f"illegal header value {value!r}")
        if name == b"content-length":
            lengths = {part.strip() for part in value.split(b",")}
            if len(lengths) != 1:
                raise ValueError("conflicting Content-Length headers")
            value = lengths.pop()
            if not value.isdigit() or len(value) > 20:
                raise ValueError("bad Content-Length")
            if seen_length is None:
                seen_length = value
                items.append((raw, name, value))
            elif seen_length != value:
                raise ValueError("conflicting Content-Length headers")
        elif name == b"transfer-encoding":
            if seen_coding:
                raise ValueError("multiple Transfer-Encoding headers")
            value = value.lower()
            if value != b"chunked":
                raise ValueError("only Transfer-Encoding: chunked is supported")
            seen_coding = True
            items.append((raw, name, value))
        else:
            if name == b"connection":
                for token in value.lower().split(b","):
                    token = token.strip()
                    if token:
                        connection_tokens.append(token)
            elif name not in _NOT_PLAIN and len(value) <= _LINE_CACHE_VALUE_MAX:
                key = (raw, value)
                if key not in _LINES:
                    if len(_LINES) >= _LINE_CACHE_MAX:
                        _LINES.clear()  # values that never repeat filled it: start over
                    _LINES[key] = b"%s: %s\r\n" % key
            items.append((raw, name, value))

    # Framing as h11 chooses it, HEAD counted as GET for the headers.
    need_close = False
    if status in (204, 304):
        framing, length = CONTENT_LENGTH, 0
    elif seen_coding:
        framing, length = CHUNKED, 0
    elif seen_length is not None:
        framing, length = CONTENT_LENGTH, int(seen_length)
    else:
        framing, length = HTTP10, 0
    if framing == CHUNKED or framing == HTTP10:
        items = [item for item in items if item[1] != b"content-length"]
        if request_version != b"1.1":
            items = [item for item in items if item[1] != b"transfer-encoding"]
            if request_method != b"HEAD":
                need_close = True
            framing = HTTP10
        else:
            items = [item for item in items if item[1] != b"transfer-encoding"]
            items.append((b"Transfer-Encoding", b"transfer-encoding", b"chunked"))
            framing = CHUNKED
    if not keep_alive or need_close:
        tokens = set(connection_tokens)
        tokens.discard(b"keep-alive")
        tokens.add(b"close")
        items = [item for item in items if item[1] != b"connection"]
        items.extend((b"Connection", b"connection", token) for token in sorted(tokens))
        connection_tokens = sorted(tokens)
    if request_method == b"HEAD" or status in (204, 304):
        framing, length = CONTENT_LENGTH, 0  # what the body writer allows

    out = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    for raw, name, value in items:
        if name == b"host":
            out.append(b"%s: %s\r\n" % (raw, value))
    if preamble:
        out.append(preamble)
    for raw, name, value in items:
        if name != b"host":
            out.append(b"%s: %s\r\n" % (raw, value))
    out.append(b"\r\n")
    alive = keep_alive and not need_close and b"close" not in connection_tokens
    if alive and request_version == b"1.0" and b"keep-alive" not in connection_tokens:
        # HTTP/1.0 closes unless told otherwise: say the connection stays.
        out.insert(-1, b"Connection: keep-alive\r\n")
    return ResponseHead(b"".join(out), framing, length, alive)


# The fast path (:func:`fast_response_head`): header lines already checked
# once, by (name, value) as the app gives them. Names whose presence changes
# the framing, the connection's fate, the order of lines or the default
# headers never go in; a header that is not here takes the full route once.
_LINES: dict[tuple[bytes, bytes], bytes] = {}
_LINE_CACHE_MAX = 1024
_LINE_CACHE_VALUE_MAX = 256
# A plain ``content-length`` an app sent before -> its line and its value
# (frameworks send one with most responses), and the line added for a body
# sent whole, by its length: kept while there is room, as lines are.
_LENGTH_LINES: dict[bytes, tuple[bytes, int]] = {}
_WHOLE_LINES: dict[int, bytes] = {}
_NOT_PLAIN = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection", b"server", b"date"})
# ``HTTP/1.1 <status> <reason>\r\n`` for each status with a standard reason.
STATUS_LINES: dict[int, bytes] = {
    status: b"HTTP/1.1 %d %s\r\n" % (status, phrase) for status, phrase in REASONS.items()
}
_KEEP_ALIVE_10 = b"Connection: keep-alive\r\n"


def fast_response_head(status_line: bytes, headers: list[tuple[bytes, bytes]], preamble: bytes,
                       request_version: bytes, whole: int) -> tuple[bytes, int] | None:
    """The common response, or None for :func:`render_response_head`'s full
    route: a request that keeps the connection, a status with a body, no
    HEAD, every header name one the full route has checked before (a line
    seen before is looked up; a new value is checked), or a plain
    ``content-length``, and either a Content-Length or a body sent whole
    (``whole`` bytes; -1: not whole) for which one is added, last, as the
    connection adds it. Returns
    the head and its Content-Length (the framing is Content-Length, the
    connection stays); the bytes are those of the full route (the
    differential tests compare both with h11, cold and warm)."""
    lines = [status_line, preamble]
    append = lines.append
    get = _LINES.get
    length: int | None = None
    try:
        for pair in headers:
            line = get(pair)
            if line is None:
                name, value = pair
                if name == b"content-length":
                    if length is not None:
                        return None
                    known = _LENGTH_LINES.get(value)
                    if known is None:
                        if not value.isdigit() or len(value) > 20:
                            return None
                        known = (b"content-length: %s\r\n" % value, int(value))
                        if len(_LENGTH_LINES) < _LINE_CACHE_MAX:
                            _LENGTH_LINES[value] = known
                    line, length = known
                else:
                    # A name checked before with a value not seen yet (a
                    # request id, an ETag, a timing): the value checked here.
                    # The line is kept while there is room, never by emptying
                    # the cache: values that never repeat must not push out
                    # the lines that do.
                    lower = _VALID_RESPONSE_NAMES.get(name)
                    if lower is None or lower in _NOT_PLAIN or value.translate(None, _FIELD_BAD) != value \
                            or value.strip(_OWS) != value:
                        return None
                    line = b"%s: %s\r\n" % pair
                    if len(_LINES) < _LINE_CACHE_MAX and len(value) <= _LINE_CACHE_VALUE_MAX:
                        _LINES[pair] = line
            append(line)
    except (TypeError, ValueError):  # not (name, value) tuples: the full route says what is wrong
        return None
    if length is None:
        if whole < 0:
            return None
        line = _WHOLE_LINES.get(whole)
        if line is None:
            line = b"content-length: %d\r\n" % whole
            if len(_WHOLE_LINES) < _LINE_CACHE_MAX:
                _WHOLE_LINES[whole] = line
        append(line)
        size = whole
    else:
        size = length
    if request_version != b"1.1":
        if request_version != b"1.0":
            return None
        append(_KEEP_ALIVE_10)
    append(b"\r\n")
    return b"".join(lines), size


_NOT_IN_PREAMBLE = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection"})


def header_preamble(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """``headers`` rendered for :func:`render_response_head`'s ``preamble``,
    or None when they cannot be one (a header h11 would refuse, or one that
    takes part in framing or in the choice between keep-alive and close)."""
    for raw, _ in headers:
        if raw.lower() in _NOT_IN_PREAMBLE:
            return None
    try:
        head = render_response_head(204, headers, reason=b"", request_method=b"GET",
                                    request_version=b"1.1", keep_alive=True)
    except ValueError:
        return None
    return head.data[head.data.index(b"\r\n") + 2:-2]


def check_fields(fields: list[tuple[bytes, bytes]]) -> None:
    """Refuse field names that are not tokens and values that could split a
    message (CR, LF, NUL) or carry surrounding whitespace, as for headers."""
    for raw, value in fields:
        if not raw or raw.translate(None, _TOKEN):
            raise ValueError(f"illegal header name {raw!r}")
        if value.translate(None, _FIELD_BAD) != value or value.strip(_OWS) != value:
            raise ValueError(f"illegal header value {value!r}")


def last_chunk(trailers: list[tuple[bytes, bytes]]) -> bytes:
    """The end of a chunked body, with trailer fields when there are any."""
    if not trailers:
        return LAST_CHUNK
    check_fields(trailers)
    return b"0\r\n" + b"".join(b"%s: %s\r\n" % (name, value) for name, value in trailers) + b"\r\n"


def render_head(status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
    """A response head from headers the caller vouches for (pounce's own
    responses, not an app's: those go through :func:`render_response_head`)."""
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason(status))]
    lines += [b"%s: %s\r\n" % (name, value) for name, value in headers]
    lines.append(b"\r\n")
    return b"".join(lines)


def informational(status: int) -> bytes:
    """An interim response head (``100 Continue``)."""
    return render_head(status, [])


def error_response(status: int, text: str | None = None,
                   default_headers: list[tuple[bytes, bytes]] = ()) -> bytes:  # type: ignore[assignment]
    """A complete plain-text response that closes the connection.

    For answers pounce gives itself (a refused request, a failed app, a shed
    connection), whatever state the connection is in; the body never echoes
    request data.
    """
    body = (text or reason(status).decode("ascii") or "Error").encode("utf-8")
    return render_head(status, [
        *default_headers,
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(body)),
        (b"connection", b"close"),
    ]) + body


class DefaultHeaders:
    """The headers every response gets unless the app sets them: ``server``,
    ``date`` and the configured extras.

    One per worker, refreshed once a second (:meth:`refresh`) rather than per
    response: ``headers`` as pairs, and ``preamble``, the same rendered for
    :func:`render_response_head` (None when they cannot be; see
    :func:`header_preamble`).
    """

    __slots__ = ("server", "date", "extra", "headers", "preamble")

    def __init__(self, *, server: bool = True, date: bool = True,
                 extra: list[tuple[bytes, bytes]] | None = None) -> None:
        self.server = server
        self.date = date
        self.extra = list(extra or [])
        self.headers: list[tuple[bytes, bytes]] = []
        self.preamble: bytes | None = None
        self.refresh(b"")

    def refresh(self, date: bytes) -> None:
        """Render again with ``date`` (an IMF-fixdate) as the Date value."""
        headers: list[tuple[bytes, bytes]] = []
        if self.server:
            headers.append((b"server", b"pounce"))
        if self.date and date:
            headers.append((b"date", date))
        headers.extend(self.extra)
        self.headers = headers
        self.preamble = header_preamble(headers)
