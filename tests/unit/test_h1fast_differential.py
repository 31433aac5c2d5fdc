"""Differential tests: pounce.core.protocol.h1fast against h11, the reference parser.

The contract under test: whenever ``parse_request_head`` returns a head, h11
accepts the same bytes and produces the same method, target, version,
headers, body framing, keep-alive decision and head length; and it returns
None for everything h11 rejects. Inputs come from hypothesis: well-formed
requests, requests with one mutation (the classic request-smuggling and
header-injection shapes among them), and raw bytes.
"""

from __future__ import annotations

import h11
import pytest
from h11._connection import _body_framing, _keep_alive  # h11's own decisions, compared directly
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pounce.core.protocol.h1fast import CHUNKED, CONTENT_LENGTH, RequestHead, parse_request_head

SETTINGS = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def h11_parse(data: bytes) -> tuple[h11.Request, h11.Connection] | None:
    """h11's verdict on ``data``: the Request and its connection, or None when
    h11 rejects it or needs more bytes."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError:
        return None
    if type(event) is not h11.Request:
        return None
    return event, conn


def keep_alive(event: h11.Request) -> bool:
    """h11's keep-alive rule, plus HTTP/1.0 keep-alive, which pounce honours
    and h11 does not (a 1.0 request with ``Connection: keep-alive`` and no
    ``close`` keeps the connection)."""
    if event.http_version == b"1.0":
        tokens = [t.strip() for n, v in event.headers if n == b"connection" for t in v.lower().split(b",")]
        return b"keep-alive" in tokens and b"close" not in tokens
    return _keep_alive(event)


def assert_same(data: bytes) -> RequestHead | None:
    """The differential check itself, run on every generated input."""
    fast = parse_request_head(data)
    ref = h11_parse(data)
    if fast is None:
        return None
    assert ref is not None, f"h1fast accepted what h11 rejects: {data!r}"
    event, conn = ref
    assert fast.method == event.method
    assert fast.target == event.target
    assert fast.http_version == event.http_version
    assert fast.headers == list(event.headers)
    framing, args = _body_framing(event.method, event)
    assert fast.framing == framing
    if framing == CONTENT_LENGTH:
        assert (fast.content_length,) == args
    assert fast.keep_alive == keep_alive(event)
    # h11 leaves everything after the head in its buffer.
    assert fast.consumed == len(data) - len(conn.trailing_data[0])
    return fast


# -- building blocks --------------------------------------------------------------

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=12).map(str.encode)
any_bytes = st.binary(min_size=0, max_size=12)

methods = st.one_of(
    st.sampled_from([b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS",
                     b"CONNECT", b"TRACE", b"get", b"G ET", b"GET\x00"]),
    tokens,
)
path_chars = st.sampled_from(
    [bytes([c]) for c in range(0x21, 0x7F)] + [b" ", b"\t", b"\x00", b"\x7f", b"\x80", b"\xff", b"\x0b"]
)
targets = st.one_of(
    st.sampled_from([b"/", b"/index.html", b"/a?b=c&d=e", b"*", b"http://example.com/x", b"example.com:443",
                     b"/%20space", b"/caf\xc3\xa9", b""]),
    st.lists(path_chars, max_size=16).map(lambda p: b"/" + b"".join(p)),
)
versions = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.1 ", b"http/1.1",
                            b"HTTP/1.10", b"HTTP/1", b"HTTP/1.1\x00"])
request_seps = st.sampled_from([b" ", b" ", b" ", b"  ", b"\t", b""])

header_names = st.one_of(
    st.sampled_from([b"Host", b"host", b"HOST", b"Content-Length", b"content-length", b"Transfer-Encoding",
                     b"transfer-encoding", b"Connection", b"Upgrade", b"Expect", b"Accept", b"User-Agent",
                     b"X-Forwarded-For", b"Content-Length ", b" Content-Length", b"Content Length",
                     b"Content-Length\t", b"Host\x00", b"caf\xc3\xa9", b""]),
    tokens,
)
value_bytes = st.sampled_from(
    [bytes([c]) for c in range(0x20, 0x7F)] + [b"\t", b"\x00", b"\x01", b"\x0b", b"\x0c", b"\x7f", b"\x80",
                                               b"\xa0", b"\x85", b"\xff", b"\r", b"\n"]
)
header_values = st.one_of(
    st.sampled_from([b"example.com", b"127.0.0.1:8000", b"", b"0", b"5", b"13", b"00013", b"+5", b"-1",
                     b"5, 5", b"5,6", b" 5 ", b"5 5", b"0x10", b"1" * 19, b"1" * 21, b"chunked", b"Chunked",
                     b"CHUNKED", b"chunked, gzip", b"gzip, chunked", b"chunked,", b"identity", b" chunked",
                     b"close", b"keep-alive", b"Close", b"keep-alive, close", b"upgrade", b"websocket",
                     b"100-continue", b"a\tb", b"a  b", b"\tpadded\t", b"x\x00y", b"caf\xc3\xa9"]),
    st.lists(value_bytes, max_size=16).map(b"".join),
)
colons = st.sampled_from([b":", b":", b": ", b": ", b":\t", b" :", b"\t:", b"::", b": \t "])
eols = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b"\r\r\n", b"\n\r"])


@st.composite
def header_lines(draw: st.DrawFn) -> bytes:
    name = draw(header_names)
    line = name + draw(colons) + draw(header_values)
    if draw(st.integers(0, 15)) == 0:
        line = draw(st.sampled_from([b" ", b"\t"])) + line  # obs-fold / leading whitespace
    return line + draw(eols)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """Mostly plausible requests, each part occasionally broken."""
    clean = draw(st.booleans())
    if clean:
        method = draw(st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"PATCH", b"OPTIONS"]))
        line = method + b" " + draw(targets) + b" " + draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
        eol = b"\r\n"
    else:
        line = draw(methods) + draw(request_seps) + draw(targets) + draw(request_seps) + draw(versions)
        eol = draw(eols)
    head = draw(st.sampled_from([b"", b"", b"", b"\r\n", b"\n", b" "])) if not clean else b""
    head += line + eol
    if draw(st.booleans()):
        head += b"Host: " + draw(st.sampled_from([b"example.com", b"127.0.0.1:8000", b""])) + b"\r\n"
    head += b"".join(draw(st.lists(header_lines(), max_size=6)))
    head += draw(st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b""]))
    return head + draw(st.sampled_from([b"", b"hello", b"0\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]))


safe_value_bytes = st.sampled_from([bytes([c]) for c in range(0x21, 0x7F)] + [b" ", b"\t", b"\x80", b"\xff"])


@st.composite
def well_formed_requests(draw: st.DrawFn) -> bytes:
    """Requests the fast path should take: vary everything h11 allows
    (names' case, OWS, obs-text, empty values, framing headers)."""
    method = draw(st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"PATCH", b"OPTIONS"]))
    target = b"/" + b"".join(draw(st.lists(st.sampled_from([bytes([c]) for c in range(0x21, 0x7F)]),
                                           max_size=20)))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
    lines = [b"Host: " + draw(st.sampled_from([b"h", b"example.com:80", b""]))]
    for _ in range(draw(st.integers(0, 8))):
        name = draw(st.one_of(tokens, st.sampled_from(
            [b"Content-Length", b"CONTENT-LENGTH", b"Transfer-Encoding", b"Connection", b"connection"])))
        if name.lower() == b"content-length":
            value = draw(st.sampled_from([b"0", b"5", b"007", b"123456789012345678"]))
        elif name.lower() == b"transfer-encoding":
            value = b"chunked"
        elif name.lower() == b"connection":
            value = draw(st.sampled_from([b"close", b"keep-alive", b"Keep-Alive, Close", b"TE,close", b"x"]))
        else:
            value = b"".join(draw(st.lists(safe_value_bytes, max_size=20)))
        ows = draw(st.sampled_from([b"", b" ", b"\t", b" \t "]))
        lines.append(name + b":" + ows + value + draw(st.sampled_from([b"", b" ", b"\t"])))
    draw(st.randoms()).shuffle(lines)
    return method + b" " + target + b" " + version + b"\r\n" + b"".join(ln + b"\r\n" for ln in lines) + b"\r\n"


# -- the properties ------------------------------------------------------------------


@pytest.mark.slow
@SETTINGS
@given(well_formed_requests())
def test_differential_well_formed_requests(data: bytes) -> None:
    assert_same(data)


@pytest.mark.slow
@SETTINGS
@given(requests())
def test_differential_generated_requests(data: bytes) -> None:
    assert_same(data)


@pytest.mark.slow
@SETTINGS
@given(st.binary(max_size=200))
def test_differential_random_bytes(data: bytes) -> None:
    assert_same(data)


@pytest.mark.slow
@SETTINGS
@given(st.binary(max_size=120), st.integers(0, 200))
def test_differential_random_bytes_in_a_valid_request(noise: bytes, where: int) -> None:
    base = b"POST /upload?x=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello"
    where = min(where, len(base))
    assert_same(base[:where] + noise + base[where:])


@pytest.mark.slow
@SETTINGS
@given(st.lists(st.tuples(tokens, st.binary(max_size=20)), max_size=8),
       st.sampled_from([b"GET", b"POST"]), st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
def test_differential_arbitrary_header_values(pairs: list[tuple[bytes, bytes]], method: bytes,
                                              version: bytes) -> None:
    head = method + b" / " + version + b"\r\nHost: h\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in pairs)
    assert_same(head + b"\r\n")


# -- the common cases really take the fast path ---------------------------------------


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n",
    b"GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n",
    b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
    b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHOST: h\r\nX-Empty:\r\nX-Pad: \t v a l \t\r\n\r\n",
    b"GET /caf%C3%A9 HTTP/1.1\r\nHost: h\r\nX-Obs: caf\xc3\xa9\r\n\r\n",
])
def test_common_requests_are_accepted_and_match_h11(data: bytes) -> None:
    head = assert_same(data)
    assert head is not None


def test_parsed_values() -> None:
    data = b"POST /a?b HTTP/1.1\r\nHost: h\r\nContent-Length: 0005\r\nConnection: Keep-Alive\r\n\r\nhelloGET"
    head = parse_request_head(data)
    assert head is not None
    assert (head.method, head.target, head.http_version) == (b"POST", b"/a?b", b"1.1")
    assert head.headers == [(b"host", b"h"), (b"content-length", b"0005"), (b"connection", b"Keep-Alive")]
    assert (head.framing, head.content_length, head.keep_alive) == (CONTENT_LENGTH, 5, True)
    assert data[head.consumed:] == b"helloGET"
    chunked = parse_request_head(b"PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert chunked is not None and chunked.framing == CHUNKED
    http10 = parse_request_head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert http10 is not None and http10.keep_alive is True  # 1.0 keep-alive, which h11 lacks
    plain10 = parse_request_head(b"GET / HTTP/1.0\r\n\r\n")
    assert plain10 is not None and plain10.keep_alive is False


# -- request smuggling and other hostile shapes: never accepted by the fast path --------

SMUGGLING = [
    # CL + TE (CL.TE / TE.CL desync)
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nX",
    # duplicate / list / signed / padded Content-Length
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1" + b"0" * 20 + b"\r\n\r\n",
    # Transfer-Encoding variants: chunked not last, listed twice, obfuscated
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n",
    # whitespace before the colon, obs-fold
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nX: a\r\n chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\n Host: h\r\n\r\n",
    # bare LF / bare CR line endings
    b"GET / HTTP/1.1\nHost: h\n\n",
    b"GET / HTTP/1.1\r\nHost: h\nContent-Length: 5\r\n\r\nhello",
    b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\n\n",
    # invalid characters
    b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX\x00: a\r\n\r\n",
    b"GET /a\x7fb HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n",
    b"G\x00T / HTTP/1.1\r\nHost: h\r\n\r\n",
    # request line shape, host rules, protocol switches
    b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
    b"GET /\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\n",  # incomplete
    # pounce's own policy on top of h11: no transfer coding on 1.0, origin-form only
    b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n",
    # a tab inside the request-target (h11 refuses it; h1fast must not take it)
    b"GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /\t HTTP/1.1\r\nHost: h\r\n\r\n",
]


@pytest.mark.parametrize("data", SMUGGLING)
def test_hostile_requests_go_to_h11(data: bytes) -> None:
    assert parse_request_head(data) is None
    assert_same(data)


@pytest.mark.parametrize("where", ["target", "name", "value", "request line", "between lines"])
def test_every_byte_at_each_place_of_a_head(where: str) -> None:
    """All 256 bytes, one at a time, in each part of a head: the fast path
    takes it only where h11 parses it the same, and a refused byte, a bare
    CR or a bare LF always goes to h11."""
    for byte in range(256):
        b = bytes([byte])
        data = {
            "target": b"GET /a" + b + b"b HTTP/1.1\r\nHost: h\r\n\r\n",
            "name": b"GET / HTTP/1.1\r\nHost: h\r\nX" + b + b"y: 1\r\n\r\n",
            "value": b"GET / HTTP/1.1\r\nHost: h\r\nX: a" + b + b"b\r\n\r\n",
            "request line": b"GET / HTTP/1.1" + b + b"\r\nHost: h\r\n\r\n",
            "between lines": b"GET / HTTP/1.1\r\n" + b + b"Host: h\r\n\r\n",
        }[where]
        if byte in (0x0D, 0x0A) or byte < 0x09 or 0x0B <= byte < 0x20 or byte == 0x7F:
            assert parse_request_head(data) is None, (where, byte)
        assert_same(data)


def test_head_longer_than_max_size_goes_to_h11() -> None:
    data = b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 100 + b"\r\n\r\n"
    assert parse_request_head(data, max_size=64) is None
    assert parse_request_head(data) is not None
    # The same past the length up to which the end is found by partition.
    long = data + b"x" * 2048
    assert parse_request_head(long, max_size=64) is None
    assert parse_request_head(long) is not None


@pytest.mark.parametrize("value", [10, 900, 1000, 1100, 3000])
@pytest.mark.parametrize("after", [b"", b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", b"y" * 1500])
def test_heads_of_any_length_with_anything_after_them(value: int, after: bytes) -> None:
    """Short input and long (the head's end is found two ways): the same
    head, the same length consumed, whatever follows it."""
    head = b"POST /p HTTP/1.1\r\nHost: h\r\nX: " + b"v" * value + b"\r\nContent-Length: 3\r\n\r\n"
    data = head + after
    parsed = assert_same(data)
    assert parsed is not None and parsed.consumed == len(head)
    assert parsed.headers[1] == (b"x", b"v" * value)
    assert parse_request_head(head[:-1]) is None  # no end yet


@example(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=60))
def test_every_prefix_of_a_request(data: bytes) -> None:
    """A head cut anywhere is either incomplete (None) or a complete match."""
    full = data + b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok"
    for cut in range(len(full) + 1):
        assert_same(full[:cut])


# -- the response side: render_response_head against h11's Connection.send ------------

from pounce.core.protocol import responses  # noqa: E402
from pounce.core.protocol.events import HTTP10, LocalProtocolError, Request  # noqa: E402
from pounce.core.protocol.http11 import H1Connection  # noqa: E402
from pounce.core.protocol.responses import (  # noqa: E402
    LAST_CHUNK,
    DefaultHeaders,
    chunk,
    render_response_head,
)

response_names = st.one_of(
    st.sampled_from([b"content-type", b"Content-Type", b"content-length", b"Content-Length",
                     b"transfer-encoding", b"Transfer-Encoding", b"connection", b"Connection", b"host",
                     b"server", b"date", b"x-a", b"bad name", b"", b"x:y", b"caf\xc3\xa9"]),
    tokens,
)
response_values = st.one_of(
    st.sampled_from([b"text/plain", b"", b"0", b"13", b"5", b"007", b"5, 5", b"5, 6", b" 5", b"x",
                     b"1" * 21, b"chunked", b"Chunked", b"gzip", b"close", b"keep-alive", b"Keep-Alive, Close",
                     b"upgrade", b"a b", b"a\tb", b" lead", b"trail ", b"a\r\nb", b"a\x00b", b"caf\xc3\xa9",
                     b"\x01\x7f"]),
    st.lists(value_bytes, max_size=10).map(b"".join),
)


def h11_response(status: int, headers: list[tuple[bytes, bytes]], method: bytes, version: bytes,
                 close: bool) -> tuple[bytes, str, int, bool] | None:
    """What h11 sends for this response to this request, or None if it refuses."""
    conn = h11.Connection(h11.SERVER)
    head = method + b" / HTTP/" + version + b"\r\nHost: h\r\n"
    if close:
        head += b"Connection: close\r\n"
    conn.receive_data(head + b"\r\n")
    assert type(conn.next_event()) is h11.Request
    assert type(conn.next_event()) is h11.EndOfMessage
    try:
        data = conn.send(h11.Response(status_code=status, headers=headers, reason=b"OK"))
    except h11.LocalProtocolError:
        return None
    writer = conn._writer  # h11's choice of body writer (private, compared on purpose)
    kind = type(writer).__name__
    framing = {"ContentLengthWriter": CONTENT_LENGTH, "ChunkedWriter": CHUNKED, "Http10Writer": HTTP10}[kind]
    length = writer._length if framing == CONTENT_LENGTH else 0
    return data, framing, length, conn._cstate.keep_alive


@pytest.mark.slow
@SETTINGS
@given(st.sampled_from([200, 201, 204, 304, 404, 500]),
       st.lists(st.tuples(response_names, response_values), max_size=6),
       st.sampled_from([b"GET", b"HEAD", b"POST"]), st.sampled_from([b"1.1", b"1.0"]), st.booleans())
def test_response_head_matches_h11(status: int, headers: list[tuple[bytes, bytes]], method: bytes,
                                   version: bytes, close: bool) -> None:
    expected = h11_response(status, headers, method, version, close)
    request_keep_alive = version == b"1.1" and not close
    try:
        ours = render_response_head(status, headers, reason=b"OK", request_method=method,
                                    request_version=version, keep_alive=request_keep_alive)
    except ValueError:
        assert expected is None, f"h11 sends what render_response_head refuses: {headers!r}"
        return
    assert expected is not None, f"render_response_head sends what h11 refuses: {headers!r}"
    assert (ours.data, ours.framing, ours.content_length, ours.keep_alive) == expected
    # Again, with every header line it checked now known (the fast route).
    again = render_response_head(status, headers, reason=b"OK", request_method=method,
                                 request_version=version, keep_alive=request_keep_alive)
    assert (again.data, again.framing, again.content_length, again.keep_alive) == expected


def respond_by(route: str, status: int, headers: list[tuple[bytes, bytes]], request: bytes, body: bytes,
               more: bool, trailers: bool) -> tuple[object, ...]:
    """An H1Connection's response to ``request`` by the fast or the full route:
    the bytes (or the error) and the state the body writer goes on with."""
    defaults = DefaultHeaders()
    defaults.refresh(b"Tue, 01 Dec 2026 20:00:00 GMT")
    conn = H1Connection(defaults=defaults)
    events = conn.receive_data(request)
    assert isinstance(events[0], Request)
    try:
        if route == "fast":
            data = conn.response(status, headers, body, more, trailers)
        else:
            data = conn._response(conn.request, status, headers, body, more, trailers)  # type: ignore[arg-type]
    except LocalProtocolError as exc:
        data = f"LocalProtocolError: {exc}"  # type: ignore[assignment]
    return data, conn.framing, conn.remaining, conn.reusable, conn.bodiless, conn.response_done, conn.can_reuse


app_names = st.sampled_from([b"content-type", b"content-length", b"transfer-encoding", b"connection", b"server",
                             b"date", b"host", b"x-a", b"etag", b"Content-Type", b"bad name"])


@pytest.mark.slow
@SETTINGS
@given(st.sampled_from([200, 204, 304, 404, 500, 299]),
       st.lists(st.tuples(app_names, response_values), max_size=5),
       st.sampled_from([b"GET", b"HEAD", b"POST"]),
       st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.0\r\nConnection: keep-alive",
                        b"HTTP/1.1\r\nConnection: close", b"HTTP/1.1\r\nExpect: 100-continue"]),
       st.sampled_from([b"", b"13 bytes body", b"x" * 5]), st.booleans(), st.booleans())
def test_connection_response_fast_route_matches_full_route(status: int, headers: list[tuple[bytes, bytes]],
                                                          method: bytes, version: bytes, body: bytes,
                                                          more: bool, trailers: bool) -> None:
    request = method + b" / " + version + b"\r\nHost: h\r\n\r\n"
    full = respond_by("full", status, headers, request, body, more, trailers)
    assert respond_by("fast", status, headers, request, body, more, trailers) == full
    assert respond_by("fast", status, headers, request, body, more, trailers) == full  # warm


@pytest.mark.parametrize(("version", "method", "headers", "framing", "alive"), [
    (b"1.1", b"GET", [(b"content-length", b"13")], CONTENT_LENGTH, True),
    (b"1.1", b"GET", [], CHUNKED, True),
    (b"1.0", b"GET", [], HTTP10, False),
    (b"1.1", b"HEAD", [(b"content-length", b"13")], CONTENT_LENGTH, True),
    (b"1.1", b"GET", [(b"connection", b"close"), (b"content-length", b"0")], CONTENT_LENGTH, False),
])
def test_response_head_common_cases(version: bytes, method: bytes, headers: list[tuple[bytes, bytes]],
                                    framing: str, alive: bool) -> None:
    head = render_response_head(200, headers, reason=b"OK", request_method=method, request_version=version,
                                keep_alive=version == b"1.1")
    assert head.data.startswith(b"HTTP/1.1 200 OK\r\n") and head.data.endswith(b"\r\n\r\n")
    assert (head.framing, head.keep_alive) == (framing, alive)
    assert head.data == h11_response(200, headers, method, version, False)[0]  # type: ignore[index]


def test_chunk_framing_matches_h11() -> None:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    conn.next_event()
    conn.next_event()
    conn.send(h11.Response(status_code=200, headers=[], reason=b"OK"))
    for piece in (b"hello", b"", b"x" * 300):
        assert chunk(piece) == (conn.send(h11.Data(data=piece)) or b"")
    assert LAST_CHUNK == conn.send(h11.EndOfMessage())


@pytest.fixture
def fresh_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty response-head caches (the property tests above may have filled
    the bounded name cache, which then takes no new name)."""
    monkeypatch.setattr(responses, "_LINES", {})
    monkeypatch.setattr(responses, "_VALID_RESPONSE_NAMES", {})
    monkeypatch.setattr(responses, "_LENGTH_LINES", {})
    monkeypatch.setattr(responses, "_WHOLE_LINES", {})


@pytest.mark.usefixtures("fresh_caches")
def test_content_length_lines_kept_warm_say_the_same_as_cold() -> None:
    """A Content-Length the app sent, and the one added to a body sent whole,
    come from a cache once seen: the same bytes and state as the first time
    and as the full route, its value as the app spelt it, a second
    Content-Length still refused, a wrong one still an error."""
    request = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    for headers, body in [([(b"content-length", b"2")], b"ok"), ([(b"content-length", b"02")], b"ok"),
                          ([], b"ok"), ([], b"okay"), ([(b"content-length", b"3")], b"ok")]:
        full = respond_by("full", 200, headers, request, body, False, False)
        cold = respond_by("fast", 200, headers, request, body, False, False)
        warm = respond_by("fast", 200, headers, request, body, False, False)
        assert cold == warm == full, (headers, body)
    assert b"content-length: 02\r\n" in respond_by("fast", 200, [(b"content-length", b"02")], request, b"ok",
                                                   False, False)[0]  # type: ignore[operator]
    assert set(responses._LENGTH_LINES) == {b"2", b"02", b"3"} and set(responses._WHOLE_LINES) == {2, 4}
    twice = [(b"content-length", b"2"), (b"content-length", b"2")]
    assert responses.fast_response_head(responses.STATUS_LINES[200], twice, b"", b"1.1", 2) is None


@pytest.mark.usefixtures("fresh_caches")
@pytest.mark.parametrize("value", [b"req-1f", b"req-20", b"W/\"33a-1\"", b"app;dur=0.12"])
def test_fast_route_takes_a_new_value_of_a_known_name(value: bytes) -> None:
    """A header whose value never repeats (request ids, ETags, timings) takes
    the fast route once its name is known, with the full route's bytes; its
    lines are kept while the cache has room, and never empty it."""
    request = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    respond_by("full", 200, [(b"x-request-id", b"warm")], request, b"ok", False, False)  # the name, checked
    headers = [(b"content-type", b"text/plain"), (b"x-request-id", value)]
    full = respond_by("full", 200, headers, request, b"ok", False, False)
    respond_by("full", 200, [(b"content-type", b"text/plain")], request, b"ok", False, False)
    kept = len(responses._LINES)
    conn = H1Connection(defaults=DefaultHeaders())
    conn.defaults.refresh(b"Tue, 01 Dec 2026 20:00:00 GMT")
    conn.receive_data(request)
    fresh = [(b"content-type", b"text/plain"), (b"x-request-id", value + b"-new")]
    line = responses.STATUS_LINES[200]
    assert responses.fast_response_head(line, fresh, conn.defaults.preamble, b"1.1", 2) is not None
    assert len(responses._LINES) == kept + 1  # the new line, kept: there was room
    assert respond_by("fast", 200, headers, request, b"ok", False, False) == full
    # A full cache takes no more lines from the fast route, and is not emptied by it.
    for n in range(responses._LINE_CACHE_MAX):
        responses._LINES[(b"x-filler", b"%d" % n)] = b"x-filler: %d\r\n" % n
    size = len(responses._LINES)
    again = [(b"content-type", b"text/plain"), (b"x-request-id", value + b"-newer")]
    assert responses.fast_response_head(line, again, conn.defaults.preamble, b"1.1", 2) is not None
    assert len(responses._LINES) == size and (b"content-type", b"text/plain") in responses._LINES


@pytest.mark.usefixtures("fresh_caches")
@pytest.mark.parametrize("value", [b" lead", b"trail ", b"a\r\nb", b"a\x00b", b"a\nb"])
def test_fast_route_leaves_a_bad_new_value_to_the_full_route(value: bytes) -> None:
    request = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    respond_by("full", 200, [(b"x-request-id", b"warm")], request, b"ok", False, False)
    line = responses.STATUS_LINES[200]
    assert responses.fast_response_head(line, [(b"x-request-id", value)], b"", b"1.1", 2) is None
    full = respond_by("full", 200, [(b"x-request-id", value)], request, b"ok", False, False)
    assert respond_by("fast", 200, [(b"x-request-id", value)], request, b"ok", False, False) == full
    assert isinstance(full[0], str) and full[0].startswith("LocalProtocolError")
