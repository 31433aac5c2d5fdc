"""A pure-Python fast path for parsing common, well-formed HTTP/1.1 request heads.

Sans-I/O, like h11: bytes in, a parsed head (or ``None``) out. It exists
because h11's general parser costs more per request than everything else a
hello-world request does; most real requests are simple (a known method, an
origin-form target, a handful of ``Name: value`` lines, CRLF everywhere), and
those can be recognised with a few C-level bytes operations.

The one rule: :func:`parse_request_head` answers only when it is sure. For
anything unusual it returns ``None`` and the caller hands the bytes to h11,
which then accepts or rejects them with its own error status. So the fast
path never *widens* what the server accepts: whatever it accepts, h11 accepts
and parses identically (method, target, version, headers as h11's
``event.headers`` iterates them, body framing, keep-alive), and it accepts
nothing h11 rejects. ``tests/test_h1fast_differential.py`` proves that with
hypothesis, request-smuggling vectors included.

Deliberately handed to h11 (``None``):

- an incomplete head (no ``CRLF CRLF`` yet) or one longer than ``max_size``;
- a bare LF or bare CR anywhere in the head, obs-fold continuation lines;
- control bytes or DEL anywhere in the head, whitespace before a colon,
  any byte outside ``VCHAR`` in the target;
- methods other than GET HEAD POST PUT DELETE PATCH OPTIONS (so never CONNECT),
  versions other than HTTP/1.0 and HTTP/1.1, a target that is not origin-form
  (``*``, absolute-form, authority-form);
- ``Upgrade`` and ``Expect`` (h11 tracks protocol switches and 100-continue);
- more than one ``Content-Length`` or ``Transfer-Encoding``, both together, a
  Content-Length that is not 1 to 18 digits, a Transfer-Encoding other than
  exactly ``chunked``, any Transfer-Encoding on HTTP/1.0; a missing ``Host``
  on HTTP/1.1, more than one ``Host``.

So the fast path is a subset of h11 and also of pounce's stricter policy on
top of h11 (no obs-fold, no CL+TE, no coding on 1.0, origin-form only). What
stays the caller's: the size limit for bodies (413), 503 while shutting down
or over ``limit_concurrency``, and the ``TE: trailers`` extension.
"""

from __future__ import annotations

__all__ = ["RequestHead", "parse_request_head", "CHUNKED", "CONTENT_LENGTH"]

CONTENT_LENGTH = "content-length"
CHUNKED = "chunked"

_METHODS = {
    m: m for m in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS")
}
_VERSIONS = {b"HTTP/1.1": b"1.1", b"HTTP/1.0": b"1.0"}

# Bytes a head may contain at all on the fast path: HTAB, CR, LF, SP..~ and
# obs-text. ``bytes.translate(None, allowed)`` deletes them; anything left
# over is a byte the fast path does not vouch for.
_HEAD_OK = bytes([0x09, 0x0A, 0x0D, *range(0x20, 0x7F), *range(0x80, 0x100)])
_VCHAR = bytes(range(0x21, 0x7F))
_TOKEN = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

# Raw header name -> lowercase name, for names already checked to be tokens.
# Bounded so that a client sending endless distinct names cannot grow it.
_NAME_CACHE: dict[bytes, bytes] = {}
_NAME_CACHE_MAX = 512


class RequestHead:
    """A parsed request head, with the same values h11 would produce.

    ``headers`` is a list of ``(lowercase name, value)`` pairs in order, as
    h11's ``Request.headers`` iterates; ``framing`` is ``"content-length"``
    (``content_length`` bytes follow, 0 when the request has no body) or
    ``"chunked"``; ``keep_alive`` is h11's rule (HTTP/1.1 without
    ``Connection: close``); ``consumed`` is the length of the head including
    its final blank line, so ``buf[consumed:]`` is body or the next request.
    """

    __slots__ = ("method", "target", "http_version", "headers", "framing", "content_length",
                 "keep_alive", "consumed")

    def __init__(self, method: bytes, target: bytes, http_version: bytes,
                 headers: list[tuple[bytes, bytes]], framing: str, content_length: int,
                 keep_alive: bool, consumed: int) -> None:
        self.method = method
        self.target = target
        self.http_version = http_version
        self.headers = headers
        self.framing = framing
        self.content_length = content_length
        self.keep_alive = keep_alive
        self.consumed = consumed

    def __repr__(self) -> str:
        return (f"RequestHead({self.method!r}, {self.target!r}, {self.http_version!r}, "
                f"{len(self.headers)} headers, {self.framing}={self.content_length}, "
                f"keep_alive={self.keep_alive}, consumed={self.consumed})")


def _lower_name(raw: bytes) -> bytes | None:
    """The lowercase header name, or None when ``raw`` is not a token."""
    if not raw or raw.translate(None, _TOKEN):
        return None
    lowered = raw.lower()
    if len(_NAME_CACHE) < _NAME_CACHE_MAX:
        _NAME_CACHE[raw] = lowered
    return lowered


def parse_request_head(buf: bytes, max_size: int = 16384) -> RequestHead | None:
    """Parse the request head at the start of ``buf``, or return None.

    None means "not sure": feed the same bytes to h11 instead. It never
    raises on bad input; rejecting is h11's job.
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0 or end + 4 > max_size:
        return None
    head = bytes(buf[:end])
    if head.translate(None, _HEAD_OK):
        return None
    crlf = head.count(b"\r\n")
    if head.count(b"\n") != crlf or head.count(b"\r") != crlf:
        return None  # a bare LF or CR: h11 reads those its own way
    lines = head.split(b"\r\n")

    # Request line: METHOD SP target SP HTTP/1.x, single spaces.
    line = lines[0]
    sp1 = line.find(b" ")
    method = _METHODS.get(line[:sp1])
    if method is None:
        return None
    sp2 = line.find(b" ", sp1 + 1)
    if sp2 < 0:
        return None
    version = _VERSIONS.get(line[sp2 + 1:])
    if version is None:
        return None
    target = line[sp1 + 1:sp2]
    if target[:1] != b"/" or target.translate(None, _VCHAR):
        return None  # not origin-form (``*``, absolute-form, ...), or a byte h11 refuses

    headers: list[tuple[bytes, bytes]] = []
    append = headers.append
    cache = _NAME_CACHE
    content_length = -1
    chunked = False
    hosts = 0
    keep_alive = version == b"1.1"
    for i in range(1, len(lines)):
        line = lines[i]
        colon = line.find(b":")
        if colon <= 0:
            return None
        raw = line[:colon]
        name = cache.get(raw)
        if name is None:
            name = _lower_name(raw)
            if name is None:
                return None  # not a token: whitespace before the colon, obs-fold, ...
        value = line[colon + 1:].strip(b" \t")
        if name == b"host":
            hosts += 1
        elif name == b"content-length":
            if content_length >= 0 or not value.isdigit() or len(value) > 18:
                return None
            content_length = int(value)
        elif name == b"transfer-encoding":
            if chunked or value != b"chunked":
                return None
            chunked = True
        elif name == b"connection":
            if keep_alive and b"close" in [t.strip() for t in value.lower().split(b",")]:
                keep_alive = False
        elif name == b"upgrade" or name == b"expect":
            return None
        append((name, value))

    if hosts > 1 or (hosts == 0 and version == b"1.1"):
        return None
    if chunked:
        if content_length >= 0 or version == b"1.0":
            # CL and TE together, or a transfer coding on HTTP/1.0 (which has
            # none): smuggling material; the h11 path refuses it.
            return None
        return RequestHead(method, target, version, headers, CHUNKED, 0, keep_alive, end + 4)
    return RequestHead(method, target, version, headers, CONTENT_LENGTH,
                       content_length if content_length > 0 else 0, keep_alive, end + 4)


# -- the response side ----------------------------------------------------------------
#
# Bypassing h11 for a request means writing its response without h11 too. The
# function below produces, byte for byte, the head h11's ``Connection.send``
# would produce for the same response on the same request (validation, body
# framing, ``Connection: close`` rules, header order), so a fast-path request
# and an h11 request are indistinguishable on the wire.
# ``tests/test_h1fast_differential.py`` compares the two on generated input.

HTTP10 = "http/1.0"  # body delimited by closing the connection

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


def _title(name: bytes) -> bytes:
    # h11 re-adds the headers it manages under bytes.title() names.
    return name.title()


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
    ``keep_alive`` is the request's (:attr:`RequestHead.keep_alive`).
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
    return ResponseHead(b"".join(out), framing, length, alive)


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
