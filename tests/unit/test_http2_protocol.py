"""The sans-I/O HTTP/2 connection (pounce.core.protocol.http2), driven with
bytes alone: an h2 client connection on the other side, a fake clock for
the flood budgets; no socket, no loop."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from pounce.core.protocol.events import (
    CONNECTION_CLOSED,
    STREAM,
    Data,
    EndOfMessage,
    LocalProtocolError,
    Request,
    StreamReset,
)
from pounce.core.protocol.http2 import ErrorCodes, H2Connection
from pounce.core.protocol.http2_limits import H2Settings, TokenBucket
from pounce.core.protocol.responses import DefaultHeaders


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Pair:
    """A server connection and an h2 client wired together in memory."""

    def __init__(self, settings: H2Settings | None = None, client_settings: dict[int, int] | None = None) -> None:
        self.clock = Clock()
        defaults = DefaultHeaders(server=True, date=False)
        self.server = H2Connection(settings or H2Settings(), defaults=defaults, clock=self.clock)
        self.server.initiate()
        self.client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.client.initiate_connection()
        if client_settings:
            self.client.update_settings(client_settings)
        self.client_events: list[h2.events.Event] = []
        self.to_client()
        self.to_server()
        self.to_client()

    def to_server(self, data: bytes | None = None) -> list[object]:
        return self.server.receive_data(self.client.data_to_send() if data is None else data)

    def to_client(self) -> list[h2.events.Event]:
        events = self.client.receive_data(self.server.data_to_send())
        self.client_events += events
        out = self.client.data_to_send()
        if out:
            self.server.receive_data(out)
        return events

    def get(self, stream_id: int, path: str = "/", extra: list[tuple[bytes, bytes]] | None = None,
            end: bool = True, method: bytes = b"GET") -> list[object]:
        headers = [(b":method", method), (b":scheme", b"https"), (b":authority", b"example.org"),
                   (b":path", path.encode()), *(extra or [])]
        self.client.send_headers(stream_id, headers, end_stream=end)
        return self.to_server()

    def responses(self) -> dict[int, dict[str, object]]:
        out: dict[int, dict[str, object]] = {}
        for event in self.client_events:
            stream_id = getattr(event, "stream_id", None)
            if stream_id is None:
                continue
            entry = out.setdefault(stream_id, {"headers": {}, "body": b"", "ended": False, "reset": None})
            if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived,
                                  h2.events.InformationalResponseReceived)):
                entry["headers"].update(dict(event.headers))  # type: ignore[union-attr]
            elif isinstance(event, h2.events.DataReceived):
                entry["body"] += event.data  # type: ignore[operator]
            elif isinstance(event, h2.events.StreamEnded):
                entry["ended"] = True
            elif isinstance(event, h2.events.StreamReset):
                entry["reset"] = event.error_code
        return out


def test_a_request_becomes_the_shared_events() -> None:
    pair = Pair()
    events = pair.get(1, "/a?b=1", [(b"x-one", b"1"), (b"cookie", b"a=1"), (b"cookie", b"b=2")])
    assert [type(e) for e in events] == [Request, EndOfMessage]
    request = events[0]
    assert isinstance(request, Request)
    assert request.method == b"GET" and request.target == b"/a?b=1" and request.http_version == b"2"
    assert request.framing == STREAM and request.stream_id == 1 and request.keep_alive
    assert request.headers[0] == (b"host", b"example.org")
    assert (b"cookie", b"a=1; b=2") in request.headers and (b"x-one", b"1") in request.headers
    assert not [n for n, _ in request.headers if n.startswith(b":")]


def test_response_head_body_and_defaults() -> None:
    pair = Pair()
    pair.get(1)
    pair.server.response(1, 200, [(b"content-type", b"text/plain"), (b"connection", b"close")], b"hi", False)
    pair.to_client()
    got = pair.responses()[1]
    assert got["headers"][b":status"] == b"200" and got["headers"][b"server"] == b"pounce"
    assert got["headers"][b"content-length"] == b"2" and b"connection" not in got["headers"]
    assert got["body"] == b"hi" and got["ended"]
    assert pair.server.idle  # both sides ended: forgotten


def test_bad_response_fields_raise_before_anything_is_sent() -> None:
    pair = Pair()
    pair.get(1)
    with pytest.raises(LocalProtocolError):
        pair.server.response(1, 200, [(b"x-bad", b"a\r\nb")], b"", False)
    with pytest.raises(LocalProtocolError):
        pair.server.response(1, 200, [(b"Upper", b"1")], b"", False)
    pair.server.response(1, 200, [(b"content-length", b"3")], b"ab", True)
    with pytest.raises(LocalProtocolError):
        pair.server.body(1, b"cd", False)  # more than declared


def test_bad_value_of_a_name_seen_before_raises() -> None:
    # A name checked once is not checked again; its values still are, by the
    # quicker test that only runs for known names: CR, LF and NUL each.
    pair = Pair()
    pair.get(1)
    pair.server.response(1, 200, [(b"x-seen", b"ok")], b"", False)
    for stream_id, bad in ((3, b"a\rb"), (5, b"a\nb"), (7, b"a\0b")):
        pair.get(stream_id)
        with pytest.raises(LocalProtocolError):
            pair.server.response(stream_id, 200, [(b"x-seen", bad)], b"", False)
    pair.get(9)
    pair.server.response(9, 200, [(b"x-seen", b"a\tb")], b"", False)  # HTAB is allowed


def test_head_and_204_have_no_body() -> None:
    pair = Pair()
    pair.get(1, method=b"HEAD")
    pair.server.response(1, 200, [], b"ignored", False)
    pair.get(3)
    pair.server.response(3, 204, [], b"", False)
    pair.to_client()
    got = pair.responses()
    assert got[1]["body"] == b"" and got[1]["ended"] and got[1]["headers"][b"content-length"] == b"7"
    assert got[3]["ended"] and b"content-length" not in got[3]["headers"]


def test_request_body_window_reopens_only_when_acknowledged() -> None:
    pair = Pair(H2Settings(initial_window_size=1000))
    pair.get(1, "/up", end=False, method=b"POST")
    pair.client.send_data(1, b"x" * 1000)
    events = pair.to_server()
    assert [type(e) for e in events] == [Data]
    assert pair.client.local_flow_control_window(1) == 0
    pair.to_client()
    assert pair.client.local_flow_control_window(1) == 0  # nothing re-opened yet
    pair.server.ack(1, 1000)
    pair.to_client()
    assert pair.client.local_flow_control_window(1) == 1000


def test_connection_window_covers_every_stream() -> None:
    pair = Pair(H2Settings(initial_window_size=10000, max_concurrent_streams=10))
    pair.get(1, end=False, method=b"POST")
    assert pair.client.local_flow_control_window(1) == 10000
    assert pair.client.outbound_flow_control_window == 100000


def test_response_body_waits_behind_the_window() -> None:
    pair = Pair(client_settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 10})
    pair.get(1)
    pair.server.response(1, 200, [], b"0123456789abcdef", False)
    pair.to_client()
    assert pair.server.pending(1) == 6
    assert pair.responses()[1]["body"] == b"0123456789"
    pair.client.acknowledge_received_data(10, 1)
    pair.client.increment_flow_control_window(10, 1)
    pair.to_server()
    pair.to_client()
    assert pair.server.pending(1) == 0 and pair.responses()[1]["body"] == b"0123456789abcdef"
    assert pair.responses()[1]["ended"]


def test_trailers_end_the_stream() -> None:
    pair = Pair()
    pair.get(1, extra=[(b"te", b"trailers")])
    pair.server.response(1, 200, [], b"body", False, trailers=True)
    pair.to_client()
    assert not pair.responses()[1]["ended"]
    pair.server.trailers(1, [(b"x-sum", b"1")])
    pair.to_client()
    got = pair.responses()[1]
    assert got["ended"] and got["headers"][b"x-sum"] == b"1" and got["body"] == b"body"


@pytest.mark.parametrize("path,method,status", [(b"relative", b"GET", b"400"), (b"/a b", b"GET", b"400"),
                                                (b"/", b"CONNECT", b"405")])
def test_requests_refused_without_an_app(path: bytes, method: bytes, status: bytes) -> None:
    pair = Pair()
    if method == b"CONNECT":
        pair.client.send_headers(1, [(b":method", b"CONNECT"), (b":authority", b"x:1")], end_stream=True)
        events = pair.to_server()
    else:
        events = pair.get(1, path.decode())
    assert events == []
    pair.to_client()
    assert pair.responses()[1]["headers"][b":status"] == status


def test_extended_connect_is_a_websocket_request() -> None:
    pair = Pair()
    events = pair.get(1, "/ws", [(b":protocol", b"websocket"), (b"sec-websocket-version", b"13")],
                      end=False, method=b"CONNECT")
    assert isinstance(events[0], Request) and events[0].upgrade == b"websocket"
    off = Pair(H2Settings(connect_protocol=False))
    assert off.get(1, "/ws", [(b":protocol", b"websocket")], end=False, method=b"CONNECT") == []


def test_client_reset_is_an_event_and_rapid_resets_end_the_connection() -> None:
    pair = Pair(H2Settings(max_resets=10))
    events: list[object] = []
    for stream_id in range(1, 60, 2):
        pair.get(stream_id, end=True)
        pair.client.reset_stream(stream_id, 8)
        events += pair.to_server()
        if pair.server.closed:
            break
    assert any(isinstance(e, StreamReset) and e.code == 8 for e in events)
    assert pair.server.closed and events[-1] is CONNECTION_CLOSED
    assert "stream resets" in pair.server.error
    pair.to_client()
    goaway = [e for e in pair.client_events if isinstance(e, h2.events.ConnectionTerminated)]
    assert goaway and goaway[0].error_code == ErrorCodes.ENHANCE_YOUR_CALM


def test_budgets_refill_with_time() -> None:
    pair = Pair(H2Settings(max_control_frames=20))
    for _ in range(15):
        pair.client.ping(b"12345678")
        pair.to_server()
    pair.clock.now += 10.0  # a whole refill
    for _ in range(15):
        pair.client.ping(b"12345678")
        pair.to_server()
    assert not pair.server.closed
    for _ in range(30):
        pair.client.ping(b"12345678")
        pair.to_server()
    assert pair.server.closed and "PING" in pair.server.error


def test_token_bucket() -> None:
    clock = Clock()
    bucket = TokenBucket(2, clock)
    assert bucket.spend() and bucket.spend() and not bucket.spend()
    clock.now += 5.0  # refills 1 of 2 in 5 s (the whole in 10 s)
    assert bucket.spend() and not bucket.spend()
    assert TokenBucket(0, clock).spend(10 ** 6)  # 0: no limit


def test_graceful_goaway_waits_for_streams_in_flight() -> None:
    pair = Pair()
    pair.get(1)
    pair.server.goaway()
    assert not pair.server.goaway_sent  # stream 1 is in flight
    pair.get(3)  # still taken: the client did not know yet
    pair.server.response(1, 200, [], b"one", False)
    pair.server.response(3, 200, [], b"three", False)
    assert pair.server.goaway_sent and pair.server.last_stream_id == 3
    pair.to_client()
    assert pair.responses()[1]["body"] == b"one" and pair.responses()[3]["body"] == b"three"
    terminated = [e for e in pair.client_events if isinstance(e, h2.events.ConnectionTerminated)]
    assert terminated and terminated[0].error_code == 0 and terminated[0].last_stream_id == 3


def test_goaway_now_refuses_later_streams() -> None:
    pair = Pair()
    pair.get(1)
    pair.server.goaway(now=True)
    server_side = pair.server
    raw = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    del raw  # (the h2 client would not open a stream after GOAWAY: send one by hand)
    pair.client.send_headers(3, [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a"),
                                 (b":path", b"/")], end_stream=True)
    data = pair.client.data_to_send()
    assert server_side.receive_data(data) == []
    assert b"\x00\x00\x04\x03\x00\x00\x00\x00\x03\x00\x00\x00\x07" in server_side.data_to_send()  # RST 3 REFUSED


def test_max_requests_per_connection() -> None:
    pair = Pair(H2Settings(max_requests=2))
    pair.get(1)
    pair.server.response(1, 200, [], b"", False)
    assert not pair.server.goaway_sent
    pair.get(3)
    pair.server.response(3, 200, [], b"", False)
    assert pair.server.goaway_sent and pair.server.last_stream_id == 3


def test_h2c_upgrade_makes_stream_one() -> None:
    import base64

    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    header = client.initiate_upgrade_connection()
    assert header is not None
    server = H2Connection()
    original = Request(b"GET", b"/up", b"1.1", [(b"host", b"h"), (b"connection", b"Upgrade, HTTP2-Settings"),
                                                (b"upgrade", b"h2c"), (b"http2-settings", header)],
                       "content-length", 0, True)
    events = server.upgrade(header.rstrip(b"="), original)  # unpadded, as some clients send it
    assert isinstance(events[0], Request) and events[0].stream_id == 1 and events[0].http_version == b"2"
    assert events[0].headers == [(b"host", b"h")] and isinstance(events[1], EndOfMessage)
    server.response(1, 200, [], b"ok", False)
    client_events = client.receive_data(server.data_to_send())
    assert any(isinstance(e, h2.events.DataReceived) and e.data == b"ok" for e in client_events)
    with pytest.raises(ValueError):
        H2Connection().upgrade(b"!!not base64!!", original)
    assert base64  # (imported for the padding case above)


def test_garbage_is_a_connection_error() -> None:
    server = H2Connection()
    server.initiate()
    events = server.receive_data(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    assert events == [CONNECTION_CLOSED] and server.closed and "protocol error" in server.error
    assert server.receive_data(b"more") == []


# -- the pieces around the connection -------------------------------------------------------


def test_preface_sniffer_holds_a_prefix_and_lets_http11_through() -> None:
    from pounce.core.protocol.http2 import PREFACE
    from pounce.core.transport.http2_handover import PrefaceSniffer

    sniffer = PrefaceSniffer()
    assert sniffer.feed(b"PRI * HT") is None and not sniffer.found
    assert sniffer.feed(PREFACE[8:] + b"\x00\x00") is None and sniffer.found
    assert sniffer.held == PREFACE + b"\x00\x00"
    other = PrefaceSniffer()
    assert other.feed(b"P") is None  # could still be the preface
    assert other.feed(b"OST / HTTP/1.1\r\n") == b"POST / HTTP/1.1\r\n"
    assert PrefaceSniffer().feed(b"PRI * HTTP/2.0\r\n\r\nXX") == b"PRI * HTTP/2.0\r\n\r\nXX"


def test_h2_websocket_handshake() -> None:
    from pounce.core.protocol.websocket import HandshakeError, parse_h2_handshake

    def request(*headers: tuple[bytes, bytes], method: bytes = b"CONNECT",
                protocol: bytes | None = b"websocket") -> Request:
        return Request(method, b"/chat", b"2", list(headers), STREAM, 0, True, upgrade=protocol, stream_id=1)

    shake = parse_h2_handshake(request((b"sec-websocket-version", b"13"), (b"sec-websocket-protocol", b"a, b"),
                                       (b"sec-websocket-extensions", b"permessage-deflate")))
    assert shake.subprotocols == ["a", "b"] and shake.extension_offers == ["permessage-deflate"]
    with pytest.raises(HandshakeError) as missing:
        parse_h2_handshake(request())
    assert missing.value.status == 426 and missing.value.headers == [(b"sec-websocket-version", b"13")]
    with pytest.raises(HandshakeError) as get:
        parse_h2_handshake(request((b"sec-websocket-version", b"13"), method=b"GET", protocol=None))
    assert get.value.status == 400


def test_request_field_rules() -> None:
    from pounce.core.protocol.http2_request import Malformed, check_trailers, read_request

    base = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/")]
    assert isinstance(read_request(base, 1, True), Request)
    for bad in ([*base, (b":method", b"GET")], [(b":method", b"GET"), (b"a", b"1"), (b":path", b"/")],
                [*base, (b"x", b"a\x00b")], [*base, (b"X", b"1")], [*base, (b"keep-alive", b"1")],
                [*base, (b"te", b"gzip")], [(b":method", b"GET"), (b":path", b"/")],
                [(b":method", b"CONNECT"), (b":path", b"/"), (b":authority", b"a")],
                [*base, (b":protocol", b"websocket")], [*base[:2], (b":path", b"")]):
        with pytest.raises(Malformed):
            read_request(bad, 1, True)
    assert read_request([(b":method", b"CONNECT"), (b":authority", b"a:1")], 1, True) == 405
    connect = [(b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"https"),
               (b":path", b"/ws"), (b":authority", b"a")]
    assert isinstance(read_request(connect, 1, True), Request)
    assert read_request(connect, 1, False) == 501
    assert read_request([*base[:2], (b":path", b"/caf\xc3\xa9")], 1, True) == 400
    check_trailers([(b"x-sum", b"1")])
    with pytest.raises(Malformed):
        check_trailers([(b":status", b"200")])
