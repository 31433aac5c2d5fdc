"""Reading an HTTP/2 request header block into the shared
:class:`~pounce.core.protocol.events.Request`, with the checks of RFC 9113
8.1-8.3 made in the same single pass.

h2's own inbound header validation is switched off (it runs a chain of
generators per field, a third of h2's cost per request); these are the same
rules: pseudo-headers known, not repeated, not empty, before the regular
fields; ``:method``, ``:scheme`` and ``:path`` present except for CONNECT
(which needs ``:authority`` and no ``:scheme``/``:path`` unless it is an
extended CONNECT with ``:protocol``); field names lowercase with no control
or separator bytes; values without NUL, CR, LF or surrounding whitespace; no
connection-specific fields; ``te`` only ``trailers``. A block that breaks
one raises :class:`Malformed`: the caller resets that stream.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pounce.core.protocol.events import STREAM, Request

__all__ = ["CONNECTION_SPECIFIC", "Malformed", "check_trailers", "read_request"]

CONNECTION_SPECIFIC = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                                 b"upgrade"})
# A field value h2 (and RFC 9113 8.2.1) refuses: NUL, CR, LF, or whitespace around it.
_BAD_VALUE = re.compile(rb"[\0\r\n]|\A[ \t]|[ \t]\Z")
# Bytes a field name may not hold: controls, space, uppercase, non-ASCII, ":".
_NAME_BAD = bytes(range(0x00, 0x21)) + bytes(range(0x41, 0x5B)) + bytes(range(0x7F, 0x100)) + b":"
# Bytes a :path may hold: visible ASCII (RFC 3986 characters and the few
# that browsers send unescaped).
_PATH_OK = bytes(range(0x21, 0x7F))
_CHECKED_NAMES: set[bytes] = set()


class Malformed(Exception):
    """A header block breaking RFC 9113 8.1.1/8.2/8.3."""


def _check_name(name: bytes) -> None:
    if not name or name.translate(None, _NAME_BAD) != name:
        raise Malformed(f"illegal field name {name!r}")
    if len(_CHECKED_NAMES) < 512:
        _CHECKED_NAMES.add(name)


def read_request(fields: Iterable[tuple[bytes, bytes]], stream_id: int, connect_protocol: bool) -> Request | int:
    """The request, or the status to answer it with instead (400 for a
    target that is not a path of visible ASCII or ``OPTIONS *``; 405 for a
    plain CONNECT; 501 for an extended CONNECT pounce does not serve)."""
    method = path = authority = protocol = scheme = b""
    headers: list[tuple[bytes, bytes]] = []
    has_host = expect = trailers = regular = False
    length = 0
    for name, value in fields:
        if name[:1] == b":":
            if regular:
                raise Malformed("pseudo-header after a regular field")
            if name == b":method" and not method:
                method = value
            elif name == b":path" and not path:
                path = value
            elif name == b":scheme" and not scheme:
                scheme = value
            elif name == b":authority" and not authority:
                authority = value
            elif name == b":protocol" and not protocol:
                protocol = value
            else:
                raise Malformed(f"unknown or repeated pseudo-header {name!r}")
            if not value:
                raise Malformed(f"empty {name!r}")
            continue
        regular = True
        if name not in _CHECKED_NAMES:
            _check_name(name)
        if _BAD_VALUE.search(value) is not None:
            raise Malformed(f"illegal value in {name!r}")
        if name in CONNECTION_SPECIFIC:
            raise Malformed(f"connection-specific field {name!r}")
        if name == b"host":
            has_host = True
        elif name == b"content-length":
            length = int(value)  # (h2 checked it)
        elif name == b"expect":
            expect = value.lower() == b"100-continue"
        elif name == b"te":
            if value.lower() != b"trailers":
                raise Malformed("te other than trailers")
            trailers = True
        headers.append((name, value))
    if not method:
        raise Malformed("no :method")
    if method == b"CONNECT" and not protocol:
        if scheme or path or not authority:
            raise Malformed("plain CONNECT with :scheme or :path, or without :authority")
        return 405  # tunnels are not an ASGI thing
    if not (scheme and path):
        raise Malformed("no :scheme or :path")
    if protocol:
        if method != b"CONNECT":
            raise Malformed(":protocol without CONNECT")
        if protocol.lower() != b"websocket" or not connect_protocol:
            return 501
    if not ((path[:1] == b"/" and not path.translate(None, _PATH_OK)) or (path == b"*" and method == b"OPTIONS")):
        return 400
    if authority and not has_host:
        headers.insert(0, (b"host", authority))
    return Request(method, path, b"2", headers, STREAM, length, True, expect_continue=expect,
                   trailers=trailers, upgrade=protocol or None, stream_id=stream_id)


def check_trailers(fields: list[tuple[bytes, bytes]]) -> None:
    """Trailer fields: regular fields only, by the same rules."""
    for name, value in fields:
        _check_name(name)
        if _BAD_VALUE.search(value) is not None or name in CONNECTION_SPECIFIC:
            raise Malformed(f"illegal trailer field {name!r}")
