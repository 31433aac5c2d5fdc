"""The sans-I/O HTTP/1.1 connection, driven with bytes alone.

Both parsers (h1fast and h11) must give the same events for the same bytes,
however the bytes are split; refusals carry the right status; the one
response writer frames bodies as h11 would (and keeps HTTP/1.0 keep-alive,
which h11 lacks).
"""

from __future__ import annotations

import pytest

from pounce.core.protocol.events import (
    CHUNKED,
    CONNECTION_CLOSED,
    CONTENT_LENGTH,
    PAUSED,
    Data,
    EndOfMessage,
    LocalProtocolError,
    ProtocolError,
    Request,
)
from pounce.core.protocol.http11 import BODY, DONE, H11, IDLE, LAST, H1Connection
from pounce.core.protocol.responses import DefaultHeaders

GET = b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n"
POST = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
CHUNKED_POST = b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
EXPECT = b"POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok"


def summary(events: list[object]) -> list[tuple[object, ...]]:
    """Events as comparable tuples (request heads by their fields)."""
    out: list[tuple[object, ...]] = []
    for event in events:
        if isinstance(event, Request):
            out.append(("request", event.method, event.target, event.http_version, tuple(event.headers),
                        event.framing, event.content_length, event.keep_alive, event.expect_continue,
                        event.trailers, event.upgrade))
        elif isinstance(event, Data):
            if out and out[-1][0] == "data":  # split reads: pieces of one body
                out[-1] = ("data", out[-1][1] + event.data)
            else:
                out.append(("data", event.data))
        elif isinstance(event, EndOfMessage):
            out.append(("end", tuple(event.trailers)))
        else:
            out.append((type(event).__name__,))
    return [e for e in out if e != ("Paused",)]


def feed(data: bytes, *, fast: bool, step: int = 0) -> list[object]:
    """Every event ``data`` gives, answering each request at once."""
    conn = H1Connection(fast=fast)
    events: list[object] = []
    pieces = [data[i:i + step] for i in range(0, len(data), step)] if step else [data]
    for piece in pieces:
        events += conn.receive_data(piece)
        while conn.state is DONE:
            conn.response(200, [], b"", False)
            events += conn.next_cycle()
    return events


@pytest.mark.parametrize("data", [GET, POST, CHUNKED_POST, EXPECT, GET + POST + GET, POST + CHUNKED_POST + GET,
                                  b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + GET])
@pytest.mark.parametrize("step", [0, 1, 7])
def test_both_parsers_give_the_same_events_however_split(data: bytes, step: int) -> None:
    fast, slow = summary(feed(data, fast=True, step=step)), summary(feed(data, fast=False, step=step))
    assert fast == slow
    assert [e[0] for e in fast].count("request") == data.count(b"HTTP/1.")


def test_a_simple_request_goes_fast_a_chunked_one_through_h11() -> None:
    conn = H1Connection()
    events = conn.receive_data(GET)
    assert conn.state is DONE and conn._h11 is None and len(events) == 2
    conn.response(200, [], b"", False)
    conn.next_cycle()
    conn.receive_data(CHUNKED_POST[:60])
    assert conn.state is H11 and conn.request is not None and conn.request.framing == CHUNKED


def test_a_pipelined_request_is_held_until_next_cycle() -> None:
    conn = H1Connection()
    events = conn.receive_data(GET + b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
    assert events[-1] is PAUSED and conn.state is DONE
    assert conn.receive_data(b"GET /third") == [PAUSED]  # still held, reading stays off
    conn.response(204, [], b"", False)
    second = conn.next_cycle()
    assert isinstance(second[0], Request) and second[0].target == b"/second"


def test_body_framed_here_across_reads() -> None:
    conn = H1Connection()
    head = b"PUT /u HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"
    events = conn.receive_data(head + b"abc")
    assert conn.state is BODY and summary(events)[-1] == ("data", b"abc")
    events = conn.receive_data(b"defghij" + GET)
    assert summary(events)[:2] == [("data", b"defghij"), ("end", ())] and events[-1] is PAUSED


@pytest.mark.parametrize(("data", "status"), [
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400),  # obs-fold
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\nx", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"GET x:80 HTTP/1.1\r\nHost: x\r\n\r\n", 400),  # authority-form
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 431),
    (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET /" + b"a" * 20000, 414),  # still incomplete
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000, 431),
    (b" GET / HTTP/1.1\r\n", 400),
    (b"\x16\x03\x01\x02\x00", 400),  # a TLS hello on the cleartext port
])
@pytest.mark.parametrize("fast", [True, False])
def test_refusals_carry_their_status(data: bytes, status: int, fast: bool) -> None:
    with pytest.raises(ProtocolError) as info:
        H1Connection(fast=fast).receive_data(data)
    assert info.value.status == status


def test_absolute_form_becomes_origin_form_and_options_star_passes() -> None:
    request = H1Connection().receive_data(b"GET http://example.com:8080/p?q HTTP/1.1\r\nHost: other\r\n\r\n")[0]
    assert isinstance(request, Request)
    assert request.target == b"/p?q" and (b"host", b"example.com:8080") in request.headers
    assert (b"host", b"other") not in request.headers
    star = H1Connection().receive_data(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")[0]
    assert isinstance(star, Request) and star.target == b"*"


def test_eof() -> None:
    assert H1Connection().receive_eof() == [CONNECTION_CLOSED]
    conn = H1Connection()
    conn.receive_data(b"GET / HT")
    with pytest.raises(ProtocolError):
        conn.receive_eof()
    conn = H1Connection()
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc")
    with pytest.raises(ProtocolError, match="complete message body"):
        conn.receive_eof()
    conn = H1Connection()
    conn.receive_data(GET + GET)
    assert conn.receive_eof() == []  # the held request first
    conn.response(200, [], b"", False)
    assert summary(conn.next_cycle())[-1] == ("end", ())
    conn.response(200, [], b"", False)
    assert conn.next_cycle() == [CONNECTION_CLOSED]


def test_nothing_after_a_last_request_is_read() -> None:
    conn = H1Connection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert conn.state is LAST
    assert conn.receive_data(b"garbage that would be a 400\r\n\r\n") == []
    head = conn.response(200, [], b"ok", False)
    assert b"Connection: close\r\n" in head and not conn.can_reuse


def defaults() -> DefaultHeaders:
    headers = DefaultHeaders()
    headers.refresh(b"Tue, 01 Dec 2026 12:00:00 GMT")
    return headers


def answer(request: bytes, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None,
           body: bytes = b"ok", more: bool = False) -> tuple[H1Connection, bytes]:
    conn = H1Connection(defaults=defaults())
    conn.receive_data(request)
    return conn, conn.response(status, headers or [], body, more)


def test_response_framing() -> None:
    conn, data = answer(GET)
    assert data == (b"HTTP/1.1 200 OK\r\nserver: pounce\r\ndate: Tue, 01 Dec 2026 12:00:00 GMT\r\n"
                    b"content-length: 2\r\n\r\nok")
    assert conn.can_reuse
    conn, data = answer(GET, body=b"a", more=True)
    assert b"Transfer-Encoding: chunked\r\n" in data and data.endswith(b"\r\n1\r\na\r\n")
    assert conn.body(b"", False) == b"0\r\n\r\n" and conn.can_reuse
    conn, data = answer(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", body=b"dropped")
    assert data.endswith(b"content-length: 7\r\n\r\n")
    conn, data = answer(GET, status=204, body=b"")
    assert b"content-length" not in data.lower()


def test_app_headers_override_defaults_and_transfer_encoding_is_the_servers() -> None:
    _, data = answer(GET, headers=[(b"server", b"mine"), (b"transfer-encoding", b"gzip")])
    assert b"server: mine\r\n" in data and b"server: pounce" not in data
    assert b"gzip" not in data and b"date: " in data


def test_length_mistakes_raise_before_anything_is_written() -> None:
    conn, _ = answer(GET, headers=[(b"content-length", b"3")], body=b"ab", more=True)
    with pytest.raises(LocalProtocolError, match="Too much"):
        conn.body(b"cd", True)
    with pytest.raises(LocalProtocolError, match="Too little"):
        conn.body(b"", False)
    conn = H1Connection()
    conn.receive_data(GET)
    with pytest.raises(LocalProtocolError):
        conn.response(200, [(b"x-bad", b"a\r\nb")], b"", False)


def test_trailers_only_to_a_client_that_asked() -> None:
    asked = GET.replace(b"\r\n\r\n", b"\r\nTE: trailers\r\n\r\n")
    conn, data = answer(asked, body=b"x", more=False)
    conn = H1Connection()
    conn.receive_data(asked)
    head = conn.response(200, [], b"x", False, trailers=True)
    assert b"chunked" in head and head.endswith(b"1\r\nx\r\n")
    assert conn.trailers([(b"x-sum", b"1")]) == b"0\r\nx-sum: 1\r\n\r\n"
    conn = H1Connection()
    conn.receive_data(GET)
    conn.response(200, [], b"x", False, trailers=True)
    assert conn.trailers([(b"x-sum", b"1")]) == b"0\r\n\r\n"


def test_http10_keep_alive() -> None:
    conn, data = answer(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert data.endswith(b"content-length: 2\r\nConnection: keep-alive\r\n\r\nok") and conn.can_reuse
    conn.next_cycle()
    conn.receive_data(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    data = conn.response(200, [], b"streamed", True)
    assert b"keep-alive" not in data.lower() and b"Connection: close" in data
    conn.body(b"", False)
    assert not conn.can_reuse  # no length: the body ends with the connection
    conn, data = answer(b"GET / HTTP/1.0\r\n\r\n")
    assert b"Connection: close" in data and not conn.can_reuse


def test_100_continue() -> None:
    conn = H1Connection()
    conn.receive_data(EXPECT[:-2])
    assert conn.waits_for_continue
    assert conn.continue_() == b"HTTP/1.1 100 Continue\r\n\r\n" and not conn.waits_for_continue
    conn = H1Connection()
    conn.receive_data(EXPECT[:-2])
    conn.response(417, [], b"no", False)
    assert not conn.can_reuse  # answered without 100: the body may still come


def test_server_side_close_makes_the_next_response_the_last() -> None:
    conn = H1Connection()
    conn.receive_data(GET)
    conn.keep_alive = False
    assert b"connection: close" in conn.response(200, [], b"", False) and not conn.can_reuse


def test_upgrade_keeps_the_early_bytes_for_the_new_protocol() -> None:
    conn = H1Connection()
    events = conn.receive_data(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               b"Sec-WebSocket-Version: 13\r\n\r\n\x81\x80frame")
    assert isinstance(events[0], Request) and events[0].upgrade == b"websocket"
    assert conn.take_held() == b"\x81\x80frame" and conn.state is LAST


def test_state_after_a_request_with_content_length_zero() -> None:
    conn = H1Connection()
    events = conn.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(events[0], Request) and events[0].framing == CONTENT_LENGTH
    assert summary(events)[1:] == [("end", ())] and conn.state is DONE
    conn.response(200, [], b"", False)
    conn.next_cycle()
    assert conn.state is IDLE
