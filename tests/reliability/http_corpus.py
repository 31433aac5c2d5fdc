"""A corpus of hostile and odd HTTP/1.1 requests, shared by the test suite and
``benchmarks/corpus_compare.py`` (which runs it against pounce and uvicorn).

Each case is raw bytes sent on a fresh connection, and what a careful server
does with them: the status it answers, whether it closes the connection, and
whether the ASGI app may be called at all. ``expect`` is a tuple of acceptable
statuses (several where the RFCs allow a choice).

The app used with the corpus answers ``200`` with the body ``APP`` so that a
reached app is visible from outside too.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.helpers import connect, read_until_closed


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    expect: tuple[int, ...]
    closed: bool = True         # the connection must be closed after the answer
    app: bool | None = False    # True: must be called; False: must not; None: either
    group: str = "malformed"
    note: str = ""


H = b"Host: example.com\r\n"
POST = b"POST / HTTP/1.1\r\n" + H


def _case(name: str, data: bytes, *expect: int, closed: bool = True, app: bool | None = False,
          group: str = "malformed", note: str = "") -> Case:
    return Case(name, data, tuple(expect), closed, app, group, note)


BIG = 20000  # over the 16 KiB default of max_incomplete_event_size

CORPUS: list[Case] = [
    # -- request line ------------------------------------------------------------
    _case("garbage line", b"GARBAGE\r\n\r\n", 400),
    _case("no version", b"GET /\r\n\r\n", 400),
    _case("lowercase version", b"GET / http/1.1\r\n" + H + b"\r\n", 400),
    _case("double space", b"GET  / HTTP/1.1\r\n" + H + b"\r\n", 400),
    _case("tab separator", b"GET\t/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    _case("bad method chars", b"G(T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    _case("NUL bytes", b"\x00" * 64 + b"\r\n\r\n", 400),
    _case("TLS ClientHello on plain port", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, 400),
    _case("request line too long", b"GET /" + b"a" * BIG + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    # -- versions ----------------------------------------------------------------
    _case("HTTP/2.0 request line", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505, group="version"),
    _case("HTTP/0.9 version", b"GET / HTTP/0.9\r\n" + H + b"\r\n", 505, group="version"),
    _case("HTTP/3.0 version", b"GET / HTTP/3.0\r\n" + H + b"\r\n", 505, group="version"),
    _case("HTTP/2 preface, wrong", b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", 505, 400, group="version",
          note="the right preface is HTTP/2 by prior knowledge (tests/integration/test_http2_clients.py)"),
    _case("HTTP/1.2 treated as 1.1", b"GET / HTTP/1.2\r\n" + H + b"Connection: close\r\n\r\n", 200,
          app=True, group="version", note="RFC 9110 2.5: a higher minor version is served as 1.1"),
    # -- targets -----------------------------------------------------------------
    _case("non-ASCII in target", b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n", 400, group="target"),
    _case("NUL in target", b"GET /a\x00b HTTP/1.1\r\n" + H + b"\r\n", 400, group="target"),
    _case("authority-form target", b"CONNECT example.com:443 HTTP/1.1\r\n" + H + b"\r\n", 400, 405, 501,
          group="target"),
    _case("CONNECT with origin-form target", b"CONNECT /a HTTP/1.1\r\n" + H + b"\r\n", 405, 400, 501,
          group="target", note="found by the fuzz test: a 2xx to CONNECT switches h11 into tunnel mode"),
    _case("* target with GET", b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400, group="target"),
    _case("relative target", b"GET foo HTTP/1.1\r\n" + H + b"\r\n", 400, group="target"),
    _case("absolute-form with userinfo", b"GET http://u@example.com/ HTTP/1.1\r\n" + H + b"\r\n", 400,
          group="target"),
    _case("OPTIONS *", b"OPTIONS * HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n", 200, app=True,
          group="target"),
    _case("absolute-form target", b"GET http://other.example/p?q=1 HTTP/1.1\r\n" + H +
          b"Connection: close\r\n\r\n", 200, app=True, group="target",
          note="path /p, host other.example (RFC 9112 3.2.2)"),
    # -- header fields -----------------------------------------------------------
    _case("missing Host (1.1)", b"GET / HTTP/1.1\r\n\r\n", 400, group="headers"),
    _case("two Host headers", b"GET / HTTP/1.1\r\n" + H + H + b"\r\n", 400, group="headers"),
    _case("space in header name", b"GET / HTTP/1.1\r\n" + H + b"Bad Name: x\r\n\r\n", 400, group="headers"),
    _case("space before colon", b"GET / HTTP/1.1\r\nHost : example.com\r\n\r\n", 400, group="headers"),
    _case("header without colon", b"GET / HTTP/1.1\r\n" + H + b"NoColon\r\n\r\n", 400, group="headers"),
    _case("empty header name", b"GET / HTTP/1.1\r\n" + H + b": x\r\n\r\n", 400, group="headers"),
    _case("NUL in header value", b"GET / HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n", 400, group="headers"),
    _case("bare CR in header value", b"GET / HTTP/1.1\r\n" + H + b"X: a\rb\r\n\r\n", 400, group="headers"),
    _case("obs-fold", b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n b\r\n\r\n", 400, group="headers"),
    _case("whitespace before first header", b"GET / HTTP/1.1\r\n " + H + b"\r\n", 400, group="headers"),
    _case("headers too large", b"GET / HTTP/1.1\r\n" + H + b"X: " + b"a" * BIG + b"\r\n\r\n", 431,
          group="headers"),
    _case("too many headers", b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: v\r\n" % i for i in range(3000))
          + b"\r\n", 431, group="headers"),
    # -- body framing ------------------------------------------------------------
    _case("two different Content-Length", POST + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
          400, group="framing"),
    _case("Content-Length list differing", POST + b"Content-Length: 3, 4\r\n\r\nabcd", 400, group="framing"),
    _case("duplicate Content-Length headers", POST + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
          400, group="framing"),
    _case("Content-Length list identical", POST + b"Content-Length: 3, 3\r\n\r\nabc", 400, group="framing",
          note="RFC 9110 8.6 allows collapsing; a list is refused as a smuggling probe"),
    _case("negative Content-Length", POST + b"Content-Length: -1\r\n\r\n", 400, group="framing"),
    _case("Content-Length with plus", POST + b"Content-Length: +3\r\n\r\nabc", 400, group="framing"),
    _case("hex Content-Length", POST + b"Content-Length: 0x3\r\n\r\nabc", 400, group="framing"),
    _case("Content-Length with exponent", POST + b"Content-Length: 1e1\r\n\r\n0123456789", 400,
          group="framing"),
    _case("unknown transfer coding", POST + b"Transfer-Encoding: gzip\r\n\r\n", 501, 400, group="framing"),
    _case("gzip, chunked coding", POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, 400,
          group="framing"),
    _case("identity coding", POST + b"Transfer-Encoding: identity\r\n\r\n", 501, 400, group="framing"),
    _case("xchunked coding", POST + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501, 400,
          group="framing"),
    _case("bad chunk size", POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400,
          group="framing"),
    _case("negative chunk size", POST + b"Transfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n", 400,
          group="framing"),
    _case("overlong chunk size", POST + b"Transfer-Encoding: chunked\r\n\r\n" + b"f" * 40 + b"\r\nab\r\n",
          400, group="framing"),
    _case("chunk without CRLF after data",
          POST + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", 400, group="framing"),
    _case("chunked in HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
          400, group="framing", note="HTTP/1.0 has no transfer codings (RFC 9112 6.1)"),
    # -- request smuggling vectors -----------------------------------------------
    _case("CL.TE", POST + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
          400, group="smuggling"),
    _case("TE.CL", POST + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n",
          400, group="smuggling"),
    _case("TE.TE obfuscated (second TE)", POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n"
          b"0\r\n\r\n", 501, 400, group="smuggling"),
    _case("TE with space before colon", POST + b"Transfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n"
          b"0\r\n\r\n", 400, group="smuggling"),
    _case("TE folded onto next line", POST + b"Transfer-Encoding:\r\n chunked\r\nContent-Length: 4\r\n\r\n"
          b"0\r\n\r\n", 400, group="smuggling"),
    _case("TE with vertical tab", POST + b"Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n", 400, 501,
          group="smuggling"),
    _case("CL with trailing garbage", POST + b"Content-Length: 4 x\r\n\r\nabcd", 400, group="smuggling"),
    _case("chunk-size with bad extension", POST + b"Transfer-Encoding: chunked\r\n\r\n3;\x00\r\nabc\r\n0\r\n\r\n",
          400, 200, closed=False, app=None, group="smuggling",
          note="h11 skips chunk extensions unread (chunk-ext is ';.*'): known leniency, harmless "
               "here because the chunk size itself is still parsed strictly"),
    _case("invalid trailer field", POST + b"Transfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer: x\r\n\r\n",
          400, group="smuggling"),
]


def valid_request(path: bytes = b"/") -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"


@dataclass
class Outcome:
    status: int | None     # None: no response at all
    closed: bool           # the server closed the connection after answering
    app: bool              # the body said the app answered
    raw: bytes


def run_case(address: tuple[str, int] | str, case: Case, timeout: float = 2.0) -> Outcome:
    """Send one case on a fresh connection and read what comes back."""
    with connect(address, timeout) as sock:
        try:
            sock.sendall(case.data)
        except OSError:
            pass  # the server may close before reading everything
        data, closed = read_until_closed(sock, timeout)
    return parse_outcome(data, closed)


def parse_outcome(data: bytes, closed: bool) -> Outcome:
    status = None
    if data.startswith(b"HTTP/1."):
        try:
            status = int(data.split(b" ", 2)[1])
        except (IndexError, ValueError):
            status = None
    body = data.partition(b"\r\n\r\n")[2]
    return Outcome(status, closed, body.endswith(b"APP"), data)


async def corpus_app(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
    """Answers 200 ``APP`` after reading the whole body."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"3")]})
    await send({"type": "http.response.body", "body": b"APP"})
