"""Hostile HTTP/2 input, one raw client per case (frames written by hand).

For each: the error the server answers with (a stream reset, a status, or
GOAWAY with a code), that the server stops early (bounded work), and that
the worker goes on serving other connections. docs/reliability.md lists
the same cases with what each gets.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import h2apps
import httpx
import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from pounce.testing import ServerThread
from tests.h2client import PREFACE, RawH2, request_headers
from tests.helpers import read_until_closed

NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, STREAM_CLOSED = 0, 1, 3, 5
REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 7, 8, 9, 11


@pytest.fixture
def srv(serve: Any) -> ServerThread:
    for key in ("running", "peak", "disconnects", "started"):
        h2apps.STATE[key] = 0
    return serve(h2apps.app, http2_flow_control_timeout=1.0, http_max_request_body_size=100000)


def still_serving(srv: ServerThread) -> None:
    with httpx.Client(http1=False, http2=True, timeout=10) as client:
        assert client.get(srv.url + "/echo").json()["http_version"] == "2"


def goaway_code(client: RawH2, timeout: float = 10.0) -> int | None:
    frame = client.goaway(timeout)
    return frame.error_code if frame is not None else None


def flood(client: RawH2, frame_bytes: bytes, count: int, batch: int = 200) -> int:
    """Send ``count`` copies in batches; stop when the server has closed.
    Returns how many were sent."""
    sent = 0
    while sent < count:
        if not client.sendall(frame_bytes * batch):
            break
        sent += batch
    return sent


# -- CVE-2023-44487 rapid reset, CVE-2025-8671 MadeYouReset -----------------------------


def test_rapid_reset_gets_enhance_your_calm(srv: ServerThread) -> None:
    with RawH2(srv.port) as client:
        stream_id = 1
        while stream_id < 4000 and not client.send_failed:
            burst = b""
            for _ in range(50):
                burst += client.headers_frame(stream_id, request_headers("/wait")).serialize()
                burst += RstStreamFrame(stream_id, error_code=CANCEL).serialize()
                stream_id += 2
            client.sendall(burst)
        assert goaway_code(client) == ENHANCE_YOUR_CALM
    # Bounded work: the apps started are about the reset budget, not 2000.
    assert h2apps.STATE["started"] <= 400, h2apps.STATE
    still_serving(srv)


def test_made_you_reset_is_counted_and_apps_stay_capped(srv: ServerThread) -> None:
    """Each stream gets a WINDOW_UPDATE overflowing its window: h2 must reset
    it (FLOW_CONTROL_ERROR). The apps keep running (they sleep) and still
    count against max_concurrent_streams; the resets draw on the budget."""
    codes: list[int] = []
    with RawH2(srv.port) as client:
        stream_id = 1
        while stream_id < 1200 and not client.send_failed and not client.closed:
            batch = range(stream_id, stream_id + 40, 2)
            stream_id += 40
            # The apps start (a PING answered means the HEADERS were read)...
            client.send(*(client.headers_frame(i, request_headers("/slow?3"), end_stream=True)
                          for i in batch), PingFrame(0, opaque_data=b"batch..."))
            client.read_until(lambda f: isinstance(f, PingFrame) and "ACK" in f.flags)
            # ...then each stream is made to be reset by the server.
            client.send(*(WindowUpdateFrame(i, window_increment=2**31 - 1) for i in batch))
        deadline = time.monotonic() + 10
        for frame in client.frames:
            if isinstance(frame, RstStreamFrame):
                codes.append(frame.error_code)
        while not client.closed and time.monotonic() < deadline:
            frame = client.read_frame(deadline)
            if isinstance(frame, RstStreamFrame):
                codes.append(frame.error_code)
            elif isinstance(frame, GoAwayFrame):
                codes.append(-frame.error_code)
                break
        for frame in client.frames:
            if isinstance(frame, GoAwayFrame) and -frame.error_code not in codes:
                codes.append(-frame.error_code)
    assert FLOW_CONTROL_ERROR in codes and REFUSED_STREAM in codes
    assert codes[-1] == -ENHANCE_YOUR_CALM
    assert h2apps.STATE["peak"] <= 100, h2apps.STATE
    still_serving(srv)


# -- floods ---------------------------------------------------------------------------------


def test_continuation_flood_ends_the_connection_early(srv: ServerThread) -> None:
    with RawH2(srv.port) as client:
        first = client.headers_frame(1, request_headers("/echo"), end_headers=False)
        client.send(first)
        piece = ContinuationFrame(1, data=b"\x40\x01a\x01b" * 2000).serialize()  # never END_HEADERS
        started = time.monotonic()
        flood(client, piece, 2000, batch=50)
        assert goaway_code(client) in (PROTOCOL_ERROR, COMPRESSION_ERROR, ENHANCE_YOUR_CALM)
        # Read and dropped for the lingering close at most, then closed.
        assert client.wait_closed(10) and time.monotonic() - started < 10
    still_serving(srv)


def test_hpack_bomb_over_the_header_list_limit(srv: ServerThread) -> None:
    with RawH2(srv.port) as client:
        big = ("x-big", "a" * 4000)
        client.send(client.headers_frame(1, request_headers("/echo", extra=[big])))
        headers, _, _ = client.response(1)
        assert headers[b":status"] == b"200"
        # Now 50 one-byte references to that table entry: ~200 KB decoded.
        client.send(client.headers_frame(3, request_headers("/echo", extra=[big] * 50)))
        frame = client.headers_frame(3, [])
        assert len(frame.data) < 300
        assert goaway_code(client) in (PROTOCOL_ERROR, COMPRESSION_ERROR, ENHANCE_YOUR_CALM)
    still_serving(srv)


@pytest.mark.parametrize("name", ["SETTINGS", "PING", "WINDOW_UPDATE", "empty DATA", "unknown"])
def test_control_frame_floods_get_enhance_your_calm(srv: ServerThread, name: str) -> None:
    with RawH2(srv.port) as client:
        if name == "SETTINGS":
            frame = SettingsFrame(0).serialize()
        elif name == "PING":
            frame = PingFrame(0, opaque_data=b"12345678").serialize()
        elif name == "WINDOW_UPDATE":
            frame = WindowUpdateFrame(0, window_increment=1).serialize()
        elif name == "empty DATA":
            client.send(client.headers_frame(1, request_headers("/wait", "POST"), end_stream=False))
            frame = DataFrame(1, data=b"").serialize()
        else:
            frame = b"\x00\x00\x01\xee\x00\x00\x00\x00\x00x"  # type 0xee, one byte
        flood(client, frame, 200000)
        assert goaway_code(client) == ENHANCE_YOUR_CALM
        assert client.wait_closed(10)  # the server stopped reading and closed
    still_serving(srv)


# -- flow control -------------------------------------------------------------------------------


def test_zero_window_stall_is_reset_after_the_timeout(srv: ServerThread) -> None:
    with RawH2(srv.port, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 0}) as client:
        client.request(1, "/big?200000")
        started = time.monotonic()
        frame = client.read_until(lambda f: isinstance(f, RstStreamFrame), timeout=10)
        assert isinstance(frame, RstStreamFrame) and frame.error_code == CANCEL
        assert 0.8 < time.monotonic() - started < 5
        # The connection itself is fine: a bodiless response needs no window.
        client.request(3, "/big?0")
        headers, body, end = client.response(3)
        assert headers[b":status"] == b"200" and body == b"" and end is not None
    still_serving(srv)


def test_one_stalled_stream_does_not_block_the_others(srv: ServerThread) -> None:
    with RawH2(srv.port) as client:
        client.request(1, "/big?1000000")  # its own window is never opened again
        for stream_id in range(3, 23, 2):
            client.request(stream_id, "/echo")
        done = set()
        stalled = 0
        deadline = time.monotonic() + 10
        while len(done) < 10 and time.monotonic() < deadline:
            frame = client.read_frame(deadline)
            if isinstance(frame, DataFrame):
                client.window_update(0, len(frame.data) or 1)  # the connection's window only
                if frame.stream_id == 1:
                    stalled += len(frame.data)
                elif "END_STREAM" in frame.flags:
                    done.add(frame.stream_id)
        assert len(done) == 10
        assert stalled <= 65535


def test_request_body_window_reopens_only_as_the_app_reads(srv: ServerThread) -> None:
    """A client that sends more than the window allows, on a stream whose
    app does not read, is stopped by a flow-control error."""
    with RawH2(srv.port) as client:
        client.send(client.headers_frame(1, request_headers("/slow?2", "POST"), end_stream=False))
        chunk = b"b" * 16384
        for _ in range(5):  # 80 KiB > the 64 KiB window, to an app that never reads
            client.data(1, chunk)
        assert goaway_code(client) == FLOW_CONTROL_ERROR
        assert not [f for f in client.frames if isinstance(f, WindowUpdateFrame) and f.stream_id == 1]
    still_serving(srv)


# -- malformed requests -------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    [(":method", "GET"), (":scheme", "http"), (":authority", "x")],  # no :path
    [*request_headers(), (":foo", "bar")],  # unknown pseudo-header
    [(":method", "GET"), ("x-a", "1"), (":scheme", "http"), (":path", "/")],  # pseudo after regular
    [*request_headers(), (":path", "/again")],  # repeated pseudo-header
    [*request_headers(), ("Upper", "1")],  # uppercase name
], ids=["no-path", "unknown", "after-regular", "repeated", "uppercase"])
def test_invalid_pseudo_headers_are_protocol_errors(srv: ServerThread, headers: list[tuple[str, str]]) -> None:
    assert_stream_error(srv, headers)


def assert_stream_error(srv: ServerThread, headers: list[tuple[str, str]]) -> None:
    """A malformed request is a stream error (RFC 9113 8.1.1): RST_STREAM
    PROTOCOL_ERROR, no app, and the connection goes on."""
    with RawH2(srv.port) as client:
        client.send(client.headers_frame(1, headers))
        frame = client.read_until(lambda f: isinstance(f, (RstStreamFrame, GoAwayFrame)))
        assert isinstance(frame, RstStreamFrame) and frame.error_code == PROTOCOL_ERROR
        client.request(3, "/echo")
        assert client.response(3)[0][b":status"] == b"200"
    assert h2apps.STATE["started"] == 1  # only the good request reached the app
    still_serving(srv)


@pytest.mark.parametrize("name,value", [("connection", "keep-alive"), ("transfer-encoding", "chunked"),
                                        ("upgrade", "h2c"), ("te", "gzip")])
def test_connection_specific_headers_are_protocol_errors(srv: ServerThread, name: str, value: str) -> None:
    assert_stream_error(srv, request_headers(extra=[(name, value)]))


@pytest.mark.parametrize("name,value", [("x-a", "new\nline"), ("x-a", " padded"), ("x a", "1"), ("", "empty")])
def test_illegal_field_names_and_values_are_protocol_errors(srv: ServerThread, name: str, value: str) -> None:
    assert_stream_error(srv, request_headers(extra=[(name, value)]))


def test_malformed_request_floods_get_enhance_your_calm(srv: ServerThread) -> None:
    """Each malformed request costs a reset (MadeYouReset's other door)."""
    with RawH2(srv.port) as client:
        stream_id = 1
        while stream_id < 2000 and not client.send_failed and not client.closed:
            # Batches of 40 (under max_concurrent_streams), each read before the next.
            client.send(*(client.headers_frame(i, [*request_headers(), ("connection", "x")])
                          for i in range(stream_id, stream_id + 80, 2)), PingFrame(0, opaque_data=b"malform."))
            client.read_until(lambda f: isinstance(f, (PingFrame, GoAwayFrame)) and "ACK" in f.flags
                              or isinstance(f, GoAwayFrame))
            stream_id += 80
        assert any(isinstance(f, GoAwayFrame) and f.error_code == ENHANCE_YOUR_CALM for f in client.frames) \
            or goaway_code(client) == ENHANCE_YOUR_CALM
    still_serving(srv)


@pytest.mark.parametrize("path,method,status", [("relative", "GET", 400), ("/caf\xe9", "GET", 400),
                                                ("*", "GET", 400), ("/", "CONNECT", 405)])
def test_bad_targets_and_connect_get_a_status(srv: ServerThread, path: str, method: str, status: int) -> None:
    with RawH2(srv.port) as client:
        headers = [(":method", method), (":authority", "x")] if method == "CONNECT" else request_headers(path)
        client.send(client.headers_frame(1, headers))
        got, _, _ = client.response(1)
        assert got[b":status"] == b"%d" % status
        client.request(3, "/echo")  # the connection goes on
        assert client.response(3)[0][b":status"] == b"200"


def test_extended_connect_for_another_protocol_is_501(srv: ServerThread) -> None:
    with RawH2(srv.port) as client:
        client.send(client.headers_frame(1, request_headers("/", "CONNECT", [(":protocol", "chat")]),
                                         end_stream=False))
        assert client.response(1)[0][b":status"] == b"501"


def test_stream_ids_reused_or_decreasing(srv: ServerThread) -> None:
    with RawH2(srv.port) as client:
        client.request(5, "/echo")
        assert client.response(5)[0][b":status"] == b"200"
        client.request(3, "/echo")  # lower than one already used
        assert goaway_code(client) == PROTOCOL_ERROR
    with RawH2(srv.port) as client:
        client.request(1, "/echo")
        assert client.response(1)[0][b":status"] == b"200"
        client.request(1, "/echo")  # reused after it closed
        assert goaway_code(client) in (PROTOCOL_ERROR, STREAM_CLOSED)
    still_serving(srv)


def test_data_on_a_closed_stream(srv: ServerThread) -> None:
    with RawH2(srv.port) as client:
        client.request(1, "/echo")
        assert client.response(1)[0][b":status"] == b"200"
        client.data(1, b"late")
        frame = client.read_until(lambda f: isinstance(f, (RstStreamFrame, GoAwayFrame)))
        assert frame is not None and frame.error_code == STREAM_CLOSED
    still_serving(srv)


def test_body_longer_than_its_content_length(srv: ServerThread) -> None:
    with RawH2(srv.port) as client:
        client.send(client.headers_frame(1, request_headers("/echo", "POST", [("content-length", "3")]),
                                         end_stream=False))
        client.data(1, b"abcdef", end_stream=True)
        assert goaway_code(client) == PROTOCOL_ERROR
    still_serving(srv)


def test_wrong_preface(srv: ServerThread) -> None:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(PREFACE[:-6] + b"XX\r\n\r\n" + b"\x00" * 9)
        data, closed = read_until_closed(sock)
    # Not HTTP/2, so HTTP/1.1 reads it: "PRI * HTTP/2.0" is refused.
    assert closed and data.startswith(b"HTTP/1.1 505") or data.startswith(b"HTTP/1.1 400")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(PREFACE + b"\x00\x00\x00\x07\x00\x00\x00\x00\x00")  # a DATA frame, not SETTINGS
        data, closed = read_until_closed(sock)
    assert closed and b"\x07" in data  # GOAWAY (type 7) before the close
    still_serving(srv)


# -- limits ---------------------------------------------------------------------------------------


def test_request_body_over_the_limit_gets_413_and_a_reset(srv: ServerThread) -> None:
    with RawH2(srv.port) as client:
        client.send(client.headers_frame(1, request_headers("/echo", "POST", [("content-length", "200000")]),
                                         end_stream=False))
        headers, _, end = client.response(1)
        assert headers[b":status"] == b"413"
        # Without a Content-Length: counted as it arrives.
        client.send(client.headers_frame(3, request_headers("/echo", "POST"), end_stream=False))
        for _ in range(4):
            client.data(3, b"c" * 15000)
        # The app reads, so the window opens again: more, past the limit.
        assert client.read_until(lambda f: isinstance(f, WindowUpdateFrame) and f.stream_id == 3)
        for _ in range(3):
            client.data(3, b"c" * 15000)
        frame = client.read_until(lambda f: f.stream_id == 3 and isinstance(f, (HeadersFrame, RstStreamFrame)))
        assert isinstance(frame, HeadersFrame) and dict(frame.decoded)[b":status"] == b"413"  # type: ignore[attr-defined]
        frame = client.read_until(lambda f: f.stream_id == 3 and isinstance(f, RstStreamFrame))
        assert frame is not None
        client.request(5, "/echo")
        assert client.response(5)[0][b":status"] == b"200"
