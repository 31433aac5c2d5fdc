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
nothing h11 rejects. ``tests/unit/test_h1fast_differential.py`` proves that
with hypothesis, request-smuggling vectors included. One deliberate
difference: an HTTP/1.0 request with ``Connection: keep-alive`` keeps the
connection here (h11 closes every 1.0 connection); the h11 path of
:mod:`pounce.core.protocol.http11` applies the same rule.

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
stays the caller's: the size limit for bodies (413), and 503 while shutting
down or over ``limit_concurrency``.
"""

from __future__ import annotations

__all__ = ["RequestHead", "parse_request_head", "CHUNKED", "CONTENT_LENGTH"]

from pounce.core.protocol.events import CHUNKED, CONTENT_LENGTH, Request

# The parsed head is the protocol layer's one request event.
RequestHead = Request

_METHODS = {
    m: m for m in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS")
}
_VERSIONS = {b"HTTP/1.1": b"1.1", b"HTTP/1.0": b"1.0"}

# Bytes a head may contain at all on the fast path: HTAB, CR, LF, SP..~ and
# obs-text; anything else is a byte the fast path does not vouch for.
_HEAD_OK = bytes([0x09, 0x0A, 0x0D, *range(0x20, 0x7F), *range(0x80, 0x100)])


def _changing_all_but(kept: bytes) -> bytes:
    """A ``bytes.translate`` table that changes every byte not in ``kept``:
    input made only of those comes back as the very same object, unchanged
    and not copied. (A table rather than ``translate(None, delete)``, which
    builds a 256-entry table on every call.)"""
    return bytes(b if b in kept else (1 if b == 0 else 0) for b in range(256))


# What a head's lines may hold: not a refused byte, nor CR or LF (the CRLFs
# are split off before the check, so any CR or LF left is a bare one).
_LINE_MARKS = _changing_all_but(bytes(b for b in _HEAD_OK if b not in b"\r\n"))
# What a request target may hold: VCHAR (``!`` to ``~``).
_VCHAR_ONLY = _changing_all_but(bytes(range(0x21, 0x7F)))
_TOKEN = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

# The header names the loop below looks at.
_SPECIAL = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection", b"te", b"upgrade",
                      b"expect"})

# Input up to this long is searched for the head's end with ``partition``.
_SHORT = 1024

# Raw header name -> lowercase name, for names already checked to be tokens.
# Bounded so that a client sending endless distinct names cannot grow it.
_NAME_CACHE: dict[bytes, bytes] = {}
_NAME_CACHE_MAX = 512


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
    if len(buf) <= _SHORT:
        # (One partition for find and slice: on 3.11 about half their cost.
        # It copies what follows the head too, so only for short input.)
        head, found, _ = buf.partition(b"\r\n\r\n")
        end = len(head)
        if not found or end + 4 > max_size:
            return None
    else:
        end = buf.find(b"\r\n\r\n")
        if end < 0 or end + 4 > max_size:
            return None
        head = buf[:end]
    if head.__class__ is not bytes:
        head = bytes(head)
    lines = head.split(b"\r\n")
    joined = b"".join(lines)
    if joined.translate(_LINE_MARKS) is not joined:
        return None  # a refused byte, or a bare LF or CR (h11 reads those its own way)

    # Request line: METHOD SP target SP HTTP/1.x, single spaces. (split and
    # partition rather than find and slices: on 3.11 every bytes.find parses
    # its arguments from a tuple, and every slice makes a slice object.)
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        return None
    method = _METHODS.get(parts[0])
    if method is None:
        return None
    version = _VERSIONS.get(parts[2])
    if version is None:
        return None
    target = parts[1]
    # "/" first; VCHAR only, which the translation leaves as it is. (Not
    # ``isascii`` and ``find(b"\t")``: on 3.11 ``find`` parses its arguments
    # from a tuple, and costs more than the whole translation.)
    if not target or target[0] != 0x2F or target.translate(_VCHAR_ONLY) is not target:
        return None  # not origin-form (``*``, absolute-form, ...), or a byte h11 refuses

    headers: list[tuple[bytes, bytes]] = []
    append = headers.append
    cache = _NAME_CACHE
    content_length = -1
    chunked = False
    hosts = 0
    keep_alive = version == b"1.1"
    closing = False
    trailers = False
    for line in lines[1:]:
        raw, colon, value = line.partition(b":")
        if not raw or not colon:
            return None
        name = cache.get(raw)
        if name is None:
            name = _lower_name(raw)
            if name is None:
                return None  # not a token: whitespace before the colon, obs-fold, ...
        value = value.strip(b" \t")
        if name not in _SPECIAL:
            pass  # (most headers: one set lookup instead of the chain below)
        elif name == b"host":
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
            tokens = [t.strip() for t in value.lower().split(b",")]
            if b"close" in tokens:
                keep_alive = False
                closing = True
            elif not closing and version == b"1.0" and b"keep-alive" in tokens:
                keep_alive = True  # HTTP/1.0 keep-alive (h11 has none)
        elif name == b"te":
            trailers = b"trailers" in value.lower()
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
        request = Request(method, target, version, headers, CHUNKED, 0, keep_alive, end + 4)
    else:
        request = Request(method, target, version, headers, CONTENT_LENGTH,
                          content_length if content_length > 0 else 0, keep_alive, end + 4)
    if trailers:
        request.trailers = True
    return request
