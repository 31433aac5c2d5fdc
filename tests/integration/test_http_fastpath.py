"""The HTTP/1.1 fast path (h1fast) and the h11 path, mixed and compared.

Request heads that :mod:`pounce.core.protocol.h1fast` accepts (with a
Content-Length body or none) skip h11; everything else goes through h11
(:mod:`pounce.core.protocol.http11`). These tests hold the server to two
promises:

- both paths mix on one connection: pipelined fast-path and h11-path
  requests are answered in order, whatever way the bytes are split;
- the fast path changes nothing a client can see: the same request bytes
  get the same response bytes (Date aside) from a server with the fast path
  on and its twin with ``[http] fast_path = false``, for generated
  well-formed requests, framing and keep-alive variants, and hostile input.

A counting wrapper around the protocol layer's h1fast parser shows the fast
path really was taken where it should be.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pounce.core.protocol import http11 as protocol_http11
from pounce.core.protocol import responses
from pounce.core.protocol.events import CONTENT_LENGTH
from pounce.core.transport.http import DRAIN_LIMIT
from pounce.testing import ServerThread
from testapps import read_body
from tests.helpers import read_until_closed

READ_TIMEOUT = 3.0


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echoes the request as JSON; the path picks the response style."""
    if scope["type"] == "lifespan":
        return
    path = scope["path"]
    body = b"" if path.startswith("/noread") else await read_body(receive)
    echo = json.dumps({
        "method": scope["method"], "path": path, "raw_path": scope["raw_path"].decode("latin-1"),
        "query": scope["query_string"].decode("latin-1"), "version": scope["http_version"],
        "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]],
        "body": body.decode("latin-1"), "scheme": scope["scheme"],
    }).encode()
    headers = [(b"content-type", b"application/json"), (b"x-Mixed-Case", b"yes")]
    if path.startswith("/stream"):
        # No length: chunked on HTTP/1.1, close-delimited on HTTP/1.0.
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i in range(0, len(echo), 7):
            await send({"type": "http.response.body", "body": echo[i:i + 7], "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path.startswith("/length"):
        headers.append((b"content-length", b"%d" % len(echo)))
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": echo[:5], "more_body": True})
        await send({"type": "http.response.body", "body": echo[5:]})
    elif path.startswith("/204"):
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
    elif path.startswith("/close"):
        headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": echo})
    elif path.startswith("/trailers"):
        await send({"type": "http.response.start", "status": 200, "headers": headers, "trailers": True})
        await send({"type": "http.response.body", "body": echo})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"1")]})
    elif path.startswith("/badlength"):
        headers.append((b"content-length", b"3"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"too long"})
    else:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": echo})


class FastCounter:
    """Counts request heads read by h1fast and framed without h11."""

    def __init__(self) -> None:
        self.accepted = 0
        self.original = protocol_http11.parse_request_head

    def wrapper(self) -> Any:
        def parse(buf: bytes, max_size: int = 16384) -> Any:
            head = self.original(buf, max_size)
            if head is not None and head.framing == CONTENT_LENGTH:
                self.accepted += 1
            return head
        return parse


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    srv = ServerThread(echo_app, lifespan="off", logging_access_log=False).start()
    try:
        yield srv
    finally:
        srv.stop()
        for other in _TWINS.pop(srv, ()):
            other.stop()


@pytest.fixture
def counter(monkeypatch: pytest.MonkeyPatch) -> FastCounter:
    counter = FastCounter()
    monkeypatch.setattr(protocol_http11, "parse_request_head", counter.wrapper())
    return counter


# A server's twin with the fast path off, started on first use.
_TWINS: dict[ServerThread, list[ServerThread]] = {}


def twin(srv: ServerThread) -> ServerThread:
    twins = _TWINS.setdefault(srv, [])
    if not twins:
        twins.append(ServerThread(srv.app, **{**srv.overrides, "http_fast_path": False}).start())
    return twins[0]


@pytest.fixture(autouse=True)
def _stop_twins_of_stopped_servers() -> Iterator[None]:
    yield  # (after the test's own servers were stopped by their fixtures)
    for srv in list(_TWINS):
        if srv.server.state.name == "STOPPED":
            for other in _TWINS.pop(srv):
                other.stop()


def exchange(srv: ServerThread, pieces: list[bytes], *, fast: bool = True) -> bytes:
    """Send ``pieces`` (a short pause between them) on a new connection and
    read until the server closes it; ``fast=False`` asks ``srv``'s twin with
    the fast path off."""
    target = srv if fast else twin(srv)
    with socket.create_connection(("127.0.0.1", target.port), timeout=READ_TIMEOUT) as sock:
        for i, piece in enumerate(pieces):
            if i:
                time.sleep(0.01)
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break  # closed after a last request: read what came
        # (Not closed by the deadline: the server still waits for a body.)
        return read_until_closed(sock, READ_TIMEOUT)[0]


_DATE = re.compile(rb"\r\ndate: [^\r]*", re.IGNORECASE)


def normalize(data: bytes) -> bytes:
    return _DATE.sub(b"\r\ndate: X", data)


def split_responses(data: bytes) -> list[tuple[bytes, dict[bytes, bytes], bytes]]:
    """Status line, headers and body of each response (length or chunked)."""
    out = []
    while data:
        head, sep, data = data.partition(b"\r\n\r\n")
        assert sep, f"incomplete response head: {head!r}"
        status, *lines = head.split(b"\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if b"content-length" in headers:
            length = int(headers[b"content-length"])
            body, data = data[:length], data[length:]
        elif headers.get(b"transfer-encoding") == b"chunked":
            body = b""
            while True:
                size_line, _, data = data.partition(b"\r\n")
                size = int(size_line, 16)
                if size == 0:
                    while True:  # trailer lines, then a blank line
                        line, _, data = data.partition(b"\r\n")
                        if not line:
                            break
                    break
                body += data[:size]
                data = data[size + 2:]
        elif status.split(b" ")[1] in (b"100", b"204", b"304"):
            body = b""
        else:
            body, data = data, b""
        if status.split(b" ")[1] != b"100":
            out.append((status, headers, body))
    return out


def req(method: str, path: str, headers: list[str] = (), body: bytes = b"", version: str = "1.1") -> bytes:  # type: ignore[assignment]
    lines = [f"{method} {path} HTTP/{version}", "Host: example.test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# -- both paths on one connection ------------------------------------------------

MIXED = [
    req("GET", "/one"),                                                           # fast
    req("POST", "/two", ["Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\n\r\n"),  # h11
    req("POST", "/three", ["Expect: 100-continue", "Content-Length: 5"], b"world"),  # h11
    req("POST", "/four", ["Content-Length: 3"], b"abc"),                          # fast
    req("GET", "/stream"),                                                        # fast, chunked reply
    req("GET", "/trailers", ["TE: trailers"]),                                    # h11
    req("GET", "/five", ["Connection: close"]),                                   # fast, last
]
EXPECTED = [("/one", ""), ("/two", "hello"), ("/three", "world"), ("/four", "abc"),
            ("/stream", ""), ("/trailers", ""), ("/five", "")]


def check_mixed(data: bytes) -> None:
    responses = split_responses(data)
    assert [json.loads(body)["path"] for _, _, body in responses] == [p for p, _ in EXPECTED]
    assert [json.loads(body)["body"] for _, _, body in responses] == [b for _, b in EXPECTED]
    assert all(status.startswith(b"HTTP/1.1 200 ") for status, _, _ in responses)
    assert responses[-1][1][b"connection"] == b"close"
    assert responses[4][1][b"transfer-encoding"] == b"chunked"


def test_pipelined_fast_and_h11_requests_answered_in_order(server: ServerThread, counter: FastCounter) -> None:
    check_mixed(exchange(server, [b"".join(MIXED)]))
    # Each head goes to h1fast first, whatever came before it on the
    # connection: an h11 request hands back what followed it.
    assert counter.accepted == 5  # /one /four /stream /trailers /five


def test_mixed_requests_one_by_one(server: ServerThread, counter: FastCounter) -> None:
    check_mixed(exchange(server, MIXED))
    assert counter.accepted == 5


@pytest.mark.slow
@given(cuts=st.lists(st.integers(min_value=1, max_value=len(b"".join(MIXED)) - 1), max_size=6, unique=True))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_mixed_requests_split_anywhere(server: ServerThread, cuts: list[int]) -> None:
    data = b"".join(MIXED)
    bounds = [0, *sorted(cuts), len(data)]
    check_mixed(exchange(server, [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]))


def test_fast_path_is_taken_and_matches_h11(server: ServerThread, counter: FastCounter) -> None:
    request = req("GET", "/x?y=1", ["Accept: */*"]) + req("GET", "/y", ["Connection: close"])
    fast = exchange(server, [request])
    assert counter.accepted == 2
    slow = exchange(server, [request], fast=False)
    assert counter.accepted == 2  # the fast path off: no request went fast
    assert normalize(fast) == normalize(slow)
    assert fast.count(b"HTTP/1.1 200 OK\r\n") == 2


def test_unread_body_is_drained_then_next_request_served(server: ServerThread, counter: FastCounter) -> None:
    body = b"x" * 5000
    head = req("POST", "/noread", [f"Content-Length: {len(body)}"])
    # Head and a part of the body first; the rest arrives after the response.
    data = exchange(server, [head + body[:100], body[100:] + req("GET", "/after", ["Connection: close"])])
    responses = split_responses(data)
    assert [json.loads(b)["path"] for _, _, b in responses] == ["/noread", "/after"]
    assert counter.accepted == 2


def test_unread_body_over_drain_limit_closes(server: ServerThread) -> None:
    head = req("POST", "/noread", [f"Content-Length: {DRAIN_LIMIT * 4}"])
    data = exchange(server, [head + b"x" * 10, req("GET", "/never")])
    responses = split_responses(data)
    assert [json.loads(b)["path"] for _, _, b in responses] == ["/noread"]


def test_body_over_limit_still_413(serve: Any) -> None:
    srv = serve(echo_app, lifespan="off", logging_access_log=False, http_max_request_body_size=10)
    data = exchange(srv, [req("POST", "/", ["Content-Length: 11"], b"x" * 11)])
    assert data.startswith(b"HTTP/1.1 413 ")
    ok = exchange(srv, [req("POST", "/", ["Content-Length: 10", "Connection: close"], b"x" * 10)])
    assert ok.startswith(b"HTTP/1.1 200 ")


def test_app_error_in_response_head_is_500_on_both_paths(server: ServerThread) -> None:
    request = req("GET", "/badlength")
    fast, slow = exchange(server, [request]), exchange(server, [request], fast=False)
    assert normalize(fast) == normalize(slow)
    assert fast.startswith(b"HTTP/1.1 500 ")


# -- differential: fast path on and off ---------------------------------------------

_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'",
                 min_size=1, max_size=12)
_VALUE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
_PATHS = st.sampled_from(["/", "/plain", "/stream", "/length", "/204", "/close", "/trailers",
                          "/noread", "/a%20b", "/%E2%9C%93", "/x/../y", "/q"])


@st.composite
def well_formed(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]))
    path = draw(_PATHS)
    if draw(st.booleans()):
        path += "?" + draw(st.text(alphabet="abc=&%20+xyz", max_size=10))
    version = draw(st.sampled_from(["1.1", "1.1", "1.0"]))
    headers = [f"{n}: {v.strip()}" for n, v in draw(st.lists(st.tuples(_TOKEN, _VALUE), max_size=5))
               if n.lower() not in ("host", "content-length", "transfer-encoding", "connection",
                                    "upgrade", "expect", "te")]
    body = draw(st.binary(max_size=200)) if method in ("POST", "PUT", "PATCH") else b""
    if body or draw(st.booleans()):
        headers.append(f"Content-Length: {len(body)}")
    connection = draw(st.sampled_from([None, "close", "keep-alive", "Close, foo"]))
    if connection:
        headers.append(f"Connection: {connection}")
    lines = [f"{method} {path} HTTP/{version}"]
    if version == "1.1" or draw(st.booleans()):
        lines.append("Host: example.test")
    lines += headers
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


_TAIL = req("GET", "/last", ["Connection: close"])


def compare(server: ServerThread, pieces: list[bytes]) -> bytes:
    fast = exchange(server, pieces)
    slow = exchange(server, pieces, fast=False)
    assert normalize(fast) == normalize(slow)
    return fast


@given(requests=st.lists(well_formed(), min_size=1, max_size=3))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_same_responses_with_and_without_fast_path(server: ServerThread, requests: list[bytes]) -> None:
    data = compare(server, [b"".join(requests) + _TAIL])
    assert data.startswith(b"HTTP/1.1 ")


@pytest.mark.slow
@given(requests=st.lists(well_formed(), min_size=1, max_size=3))
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_same_responses_one_request_per_write(server: ServerThread, requests: list[bytes]) -> None:
    compare(server, [*requests, _TAIL])


_HOSTILE = [
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc",
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc",
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3,3\r\n\r\nabc",
    b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n",
    b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    b"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\nHost: a\n\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: \x00\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n",
    b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab",  # body cut short by EOF? no: by the next head
]


@pytest.mark.slow
@pytest.mark.parametrize("data", _HOSTILE, ids=range(len(_HOSTILE)))
def test_hostile_requests_same_with_and_without_fast_path(server: ServerThread, data: bytes) -> None:
    compare(server, [data + _TAIL])


@given(prefix=well_formed(), noise=st.binary(min_size=1, max_size=30), where=st.integers(0, 400))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_damaged_requests_same_with_and_without_fast_path(server: ServerThread, prefix: bytes, noise: bytes,
                                                        where: int) -> None:
    where = min(where, len(prefix))
    compare(server, [prefix[:where] + noise + prefix[where:] + _TAIL])


# -- render_response_head's preamble (the worker's default headers, rendered once) ------

_NAMES = st.sampled_from([b"server", b"date", b"x-a", b"Content-Type", b"content-length", b"host",
                          b"connection", b"transfer-encoding", b"bad name", b"X-B"])
_VALUES = st.sampled_from([b"pounce", b"1", b"close", b"chunked", b"a b", b" pad", b"x\r\ny", b"", b"5, 5"])


@pytest.mark.slow
@given(defaults=st.lists(st.tuples(_NAMES, _VALUES), max_size=4),
       headers=st.lists(st.tuples(_NAMES, _VALUES), max_size=4),
       status=st.sampled_from([200, 204, 304, 404]), method=st.sampled_from([b"GET", b"HEAD"]),
       version=st.sampled_from([b"1.1", b"1.0"]), keep_alive=st.booleans())
@settings(max_examples=500, deadline=None)
def test_preamble_renders_as_leading_headers(defaults: list[tuple[bytes, bytes]],
                                             headers: list[tuple[bytes, bytes]], status: int,
                                             method: bytes, version: bytes, keep_alive: bool) -> None:
    """A preamble from header_preamble() gives exactly the head (and framing)
    of passing those headers first; header_preamble() refuses what it cannot."""
    preamble = responses.header_preamble(defaults)
    if preamble is None:
        return
    args = {"reason": b"R", "request_method": method, "request_version": version, "keep_alive": keep_alive}
    try:
        whole = responses.render_response_head(status, defaults + headers, **args)
    except ValueError:
        with pytest.raises(ValueError):
            responses.render_response_head(status, headers, preamble=preamble, **args)
        return
    split = responses.render_response_head(status, headers, preamble=preamble, **args)
    assert (split.data, split.framing, split.content_length, split.keep_alive) == (
        whole.data, whole.framing, whole.content_length, whole.keep_alive)


def test_header_preamble_refuses_framing_headers_and_invalid_ones() -> None:
    assert responses.header_preamble([(b"server", b"pounce"), (b"date", b"D")]) == b"server: pounce\r\ndate: D\r\n"
    assert responses.header_preamble([]) == b""
    for bad in [(b"Connection", b"close"), (b"content-length", b"1"), (b"host", b"a"),
                (b"transfer-encoding", b"chunked"), (b"x", b"a\r\nb"), (b"a b", b"1"), (b"x", b" a")]:
        assert responses.header_preamble([(b"server", b"pounce"), bad]) is None


def test_default_headers_and_app_overrides_same_on_both_paths(serve: Any) -> None:
    """--header extras, an app that sets Server or Date itself: same bytes."""
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-type", b"text/plain")]
        if scope["path"] == "/server":
            headers.append((b"Server", b"mine"))
        elif scope["path"] == "/date":
            headers.append((b"date", b"Thu, 01 Jan 1970 00:00:00 GMT"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    for extra in ([], ["X-Extra: 1", "x-other:two"], ["Connection: close"]):
        srv = serve(app, lifespan="off", logging_access_log=False, headers=extra)
        for path in ("/", "/server", "/date"):
            request = req("GET", path) + _TAIL
            fast = compare(srv, [request])
            assert fast.startswith(b"HTTP/1.1 200 OK\r\n")
            first = fast.split(b"\r\n\r\n")[0] + b"\r\n"
            if path == "/server":
                assert b"\r\nserver: mine\r\n" in first and b"server: pounce" not in first
            if extra and extra[0] == "X-Extra: 1":
                assert b"\r\nx-extra: 1\r\nx-other: two\r\n" in first


def half_close_exchange(srv: ServerThread, data: bytes, *, fast: bool) -> bytes:
    """Send ``data``, then FIN, and read what comes back until close."""
    target = srv if fast else twin(srv)
    with socket.create_connection(("127.0.0.1", target.port), timeout=READ_TIMEOUT) as sock:
        sock.sendall(data)
        time.sleep(0.05)
        sock.shutdown(socket.SHUT_WR)
        return read_until_closed(sock, READ_TIMEOUT)[0]


def test_body_cut_short_by_eof_is_400_on_both_paths(server: ServerThread) -> None:
    data = req("POST", "/", ["Content-Length: 100"], b"x" * 10)
    fast = half_close_exchange(server, data, fast=True)
    slow = half_close_exchange(server, data, fast=False)
    assert fast.startswith(b"HTTP/1.1 400 ")
    assert normalize(fast) == normalize(slow)


def test_websocket_upgrade_after_fast_path_requests_on_one_connection(serve: Any) -> None:
    """h11 has seen nothing of the fast-path requests before it: the upgrade still works."""
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": "hi"})
            await send({"type": "websocket.close", "code": 1000})
        elif scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    srv = serve(app, lifespan="off", logging_access_log=False)
    upgrade = req("GET", "/ws", ["Upgrade: websocket", "Connection: Upgrade",
                                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"])
    with socket.create_connection(("127.0.0.1", srv.port), timeout=READ_TIMEOUT) as sock:
        for _ in range(2):
            sock.sendall(req("GET", "/"))
            assert sock.recv(65536).endswith(b"\r\n\r\nok")
        sock.sendall(upgrade)
        data = b""
        deadline = time.monotonic() + READ_TIMEOUT
        while b"\x81\x02hi" not in data and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 101 ")
    assert b"\x81\x02hi" in data  # the text frame "hi"


@pytest.mark.slow
def test_keep_alive_timer_counts_from_the_last_response(serve: Any) -> None:
    """The fast path arms its keep-alive timer once per idle stretch: a
    connection busy for longer than the timeout stays open while it is
    busy, and closes one timeout after its last response, not earlier."""
    srv = serve(echo_app, lifespan="off", logging_access_log=False, timeout_keep_alive=0.4)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=READ_TIMEOUT) as sock:
        started = time.monotonic()
        while time.monotonic() - started < 1.0:  # 2.5 timeouts of requests 0.1 s apart
            sock.sendall(req("GET", "/"))
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
            time.sleep(0.1)
        last = time.monotonic()
        assert sock.recv(65536) == b""  # closed by the timer
        idle = time.monotonic() - last
    assert 0.25 <= idle < 1.5, idle
