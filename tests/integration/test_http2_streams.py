"""HTTP/2 stream life with a raw h2 client: WebSocket over HTTP/2 (RFC 8441),
trailers, 100-continue, http.disconnect on reset, graceful shutdown
(GOAWAY, streams in flight finish, new ones refused), max_requests_per_connection,
the idle timeout, limit_concurrency and timeout_request."""

from __future__ import annotations

import threading
import time
from typing import Any

import h2apps
import httpx
import pytest
from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, RstStreamFrame, SettingsFrame
from wsproto.frame_protocol import FrameProtocol, Opcode

from pounce.testing import ServerThread
from tests.h2client import RawH2, request_headers

REFUSED_STREAM = 7


def reset_state() -> None:
    for key in ("running", "peak", "disconnects", "started"):
        h2apps.STATE[key] = 0


@pytest.fixture
def srv(serve: Any) -> ServerThread:
    reset_state()
    return serve(h2apps.app)


def wait_for(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# -- WebSocket over HTTP/2 -----------------------------------------------------------------


def ws_connect(client: RawH2, stream_id: int, extra: list[tuple[str, str]] | None = None) -> dict[bytes, bytes]:
    headers = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"), (":path", "/chat"),
               (":authority", "localhost"), *(extra if extra is not None else [("sec-websocket-version", "13")])]
    client.send(client.headers_frame(stream_id, headers, end_stream=False))
    frame = client.read_until(lambda f: isinstance(f, HeadersFrame) and f.stream_id == stream_id)
    assert frame is not None
    return dict(frame.decoded)  # type: ignore[attr-defined]


def ws_messages(client: RawH2, stream_id: int, ws: FrameProtocol, count: int) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + 5
    while len(got) < count and time.monotonic() < deadline:
        frame = client.read_frame(deadline)
        if isinstance(frame, DataFrame) and frame.stream_id == stream_id:
            client.window_update(0, max(len(frame.data), 1))
            ws.receive_bytes(frame.data)
            got += list(ws.received_frames())
            if "END_STREAM" in frame.flags:
                got.append("END_STREAM")
    return got


def test_settings_advertise_extended_connect(srv: ServerThread) -> None:
    with RawH2(srv.port) as client:
        frame = client.read_until(lambda f: isinstance(f, SettingsFrame))
        assert frame is not None and frame.settings[SettingsFrame.ENABLE_CONNECT_PROTOCOL] == 1


def test_websocket_over_http2_echoes_and_closes(srv: ServerThread) -> None:
    with RawH2(srv.port) as client:
        headers = ws_connect(client, 1, [("sec-websocket-version", "13"), ("sec-websocket-protocol", "chat, x")])
        assert headers[b":status"] == b"200" and headers[b"sec-websocket-protocol"] == b"chat"
        assert b"sec-websocket-accept" not in headers
        ws = FrameProtocol(client=True, extensions=[])
        client.data(1, ws.send_data("hello", fin=True))
        client.data(1, ws.send_data(b"\x00\x01", fin=True))
        frames = ws_messages(client, 1, ws, 2)
        assert [(f.opcode, f.payload) for f in frames] == [(Opcode.TEXT, "echo hello"), (Opcode.BINARY, b"\x00\x01")]
        # Plain requests go on beside it on the same connection.
        client.request(3, "/echo")
        assert client.response(3)[0][b":status"] == b"200"
        client.data(1, ws.send_data("close", fin=True))
        frames = ws_messages(client, 1, ws, 1)
        assert frames[0].opcode == Opcode.CLOSE and frames[0].payload[0] == 4000
        client.data(1, ws.close(4000), end_stream=True)
        assert "END_STREAM" in ws_messages(client, 1, ws, 1)


def test_websocket_over_http2_without_a_version_gets_426(srv: ServerThread) -> None:
    with RawH2(srv.port) as client:
        headers = ws_connect(client, 1, [])
        assert headers[b":status"] == b"426" and headers[b"sec-websocket-version"] == b"13"


def test_websocket_reset_by_the_client_is_a_disconnect(srv: ServerThread) -> None:
    with RawH2(srv.port) as client:
        assert ws_connect(client, 1)[b":status"] == b"200"
        client.reset(1)
        client.request(3, "/echo")
        assert client.response(3)[0][b":status"] == b"200"


# -- request and response features -------------------------------------------------------------


def test_trailers_reach_a_client_that_accepts_them(srv: ServerThread) -> None:
    with RawH2(srv.port) as client:
        client.request(1, "/trailers", extra=[("te", "trailers")])
        headers, body, end = client.response(1)
        assert headers[b":status"] == b"200" and body == b"with trailers"
        assert isinstance(end, HeadersFrame) and dict(end.decoded)[b"x-checksum"] == b"abc"  # type: ignore[attr-defined]
        client.request(3, "/echo", extra=[("te", "trailers")])
        assert b'"http.response.trailers"' in client.response(3)[1]


def test_expect_100_continue(srv: ServerThread) -> None:
    with RawH2(srv.port) as client:
        client.send(client.headers_frame(1, request_headers("/echo", "POST", [("expect", "100-continue")]),
                                         end_stream=False))
        frame = client.read_until(lambda f: isinstance(f, HeadersFrame))
        assert frame is not None and dict(frame.decoded)[b":status"] == b"100"  # type: ignore[attr-defined]
        client.data(1, b"body", end_stream=True)
        headers, body, _ = client.response(1)
        assert headers[b":status"] == b"200" and b'"body_size": 4' in body


def test_a_reset_stream_is_http_disconnect_for_its_app(srv: ServerThread) -> None:
    with RawH2(srv.port) as client:
        client.request(1, "/wait")
        assert wait_for(lambda: h2apps.STATE["running"] == 1)
        client.reset(1)
        assert wait_for(lambda: h2apps.STATE["disconnects"] == 1)
        client.request(3, "/echo")
        assert client.response(3)[0][b":status"] == b"200"


def test_a_lost_connection_disconnects_every_stream(srv: ServerThread) -> None:
    client = RawH2(srv.port)
    for stream_id in (1, 3, 5):
        client.request(stream_id, "/wait")
    assert wait_for(lambda: h2apps.STATE["running"] == 3)
    client.close()
    assert wait_for(lambda: h2apps.STATE["disconnects"] == 3 and h2apps.STATE["running"] == 0)


# -- connection limits and shutdown ------------------------------------------------------------------


def test_graceful_shutdown_finishes_streams_in_flight_and_refuses_new_ones(serve: Any) -> None:
    reset_state()
    srv = serve(h2apps.app, timeout_graceful_shutdown=10)
    with RawH2(srv.port) as client:
        client.request(1, "/slow?1")
        assert wait_for(lambda: h2apps.STATE["running"] == 1)
        stopper = threading.Thread(target=srv.server.shutdown)
        stopper.start()
        goaway = client.goaway()
        assert isinstance(goaway, GoAwayFrame) and goaway.error_code == 0 and goaway.last_stream_id == 1
        client.request(3, "/echo")  # after the GOAWAY: refused, safe to retry elsewhere
        refused = client.read_until(lambda f: isinstance(f, RstStreamFrame) and f.stream_id == 3)
        assert refused is not None and refused.error_code == REFUSED_STREAM
        headers, body, _ = client.response(1)
        assert headers[b":status"] == b"200" and body == b"slow done"
        assert client.wait_closed()
        stopper.join(10)


def test_max_requests_per_connection_sends_goaway(serve: Any) -> None:
    srv = serve(h2apps.app, http2_max_requests_per_connection=3)
    with RawH2(srv.port) as client:
        for stream_id in (1, 3, 5):
            client.request(stream_id, "/echo")
            assert client.response(stream_id)[0][b":status"] == b"200"
        goaway = client.goaway()
        assert goaway is not None and goaway.last_stream_id == 5 and goaway.error_code == 0
        # Stream 7 is above the GOAWAY's last stream: refused, or the
        # connection is closed before it arrives (both tell the client to retry).
        client.request(7, "/echo")
        refused = client.read_until(lambda f: isinstance(f, RstStreamFrame) and f.stream_id == 7)
        assert refused is None or refused.error_code == REFUSED_STREAM
        assert client.wait_closed()
    # httpx moves on to a new connection by itself.
    with httpx.Client(http1=False, http2=True, timeout=10) as http:
        assert [http.get(srv.url + "/echo").status_code for _ in range(7)] == [200] * 7


def test_idle_connection_gets_goaway_and_closes(serve: Any) -> None:
    srv = serve(h2apps.app, timeout_keep_alive=0.3)
    with RawH2(srv.port) as client:
        client.request(1, "/echo")
        assert client.response(1)[0][b":status"] == b"200"
        started = time.monotonic()
        assert client.goaway() is not None and client.wait_closed()
        assert time.monotonic() - started < 3


def test_limit_concurrency_answers_503(serve: Any) -> None:
    srv = serve(h2apps.app, limit_concurrency=1)
    with RawH2(srv.port) as first, RawH2(srv.port) as second:
        first.request(1, "/echo")
        assert first.response(1)[0][b":status"] == b"200"
        second.request(1, "/echo")
        assert second.response(1)[0][b":status"] == b"503"


def test_timeout_request_gives_504(serve: Any) -> None:
    srv = serve(h2apps.app, http_timeout_request=0.3)
    with RawH2(srv.port) as client:
        client.request(1, "/slow?5")
        headers, _, _ = client.response(1)
        assert headers[b":status"] == b"504"
        client.request(3, "/echo")
        assert client.response(3)[0][b":status"] == b"200"


def test_client_goaway_lets_streams_in_flight_finish(srv: ServerThread, errors: Any) -> None:
    """A client's graceful GOAWAY (h2load sends one when done): the streams
    it opened still get their responses, then pounce says GOAWAY and closes."""
    with RawH2(srv.port) as client:
        client.request(1, "/slow?0.3")
        assert wait_for(lambda: h2apps.STATE["running"] == 1)
        client.send(GoAwayFrame(0, last_stream_id=0, error_code=0))
        headers, body, _ = client.response(1)
        assert headers[b":status"] == b"200" and body == b"slow done"
        assert client.goaway() is not None and client.wait_closed()
    # A client that says GOAWAY and hangs up at once: its apps are told, quietly.
    client = RawH2(srv.port)
    for stream_id in (1, 3, 5):
        client.request(stream_id, "/slow?0.2")
    assert wait_for(lambda: h2apps.STATE["running"] == 3)
    client.send(GoAwayFrame(0, last_stream_id=0, error_code=0))
    client.close()
    assert wait_for(lambda: h2apps.STATE["running"] == 0)
    still = httpx.Client(http1=False, http2=True, timeout=10)
    with still:
        assert still.get(srv.url + "/echo").status_code == 200
    assert errors.records == []
