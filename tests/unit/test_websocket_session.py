"""The sans-I/O half of WebSocket support, driven with bytes alone: handshake
verdicts, extension negotiation and the frame session (the asyncio half is
covered against a real server in test_websocket.py)."""

from __future__ import annotations

import h11
import pytest

from pounce.core.protocol.websocket import (
    Handshake,
    HandshakeError,
    WebSocketSession,
    negotiate,
    negotiate_deflate,
    parse_handshake,
    switching_protocols,
)
from tests.wsclient import KEY, close_frame, frame


def accept_response(hs: Handshake, *, subprotocol: str | None, app_headers: list[tuple[bytes, bytes]],
                    default_headers: list[tuple[bytes, bytes]], deflate: bool) -> tuple[bytes, list[object]]:
    """The HTTP/1.1 101 accepting ``hs``, as the transport renders it."""
    headers, extensions = negotiate(hs, subprotocol=subprotocol, app_headers=app_headers, deflate=deflate)
    return switching_protocols(hs, headers, default_headers), extensions  # type: ignore[return-value]


def request(**headers: str) -> h11.Request:
    base = {"host": "x", "upgrade": "websocket", "connection": "keep-alive, Upgrade",
            "sec-websocket-key": KEY, "sec-websocket-version": "13"}
    base.update({k.replace("_", "-"): v for k, v in headers.items()})
    return h11.Request(method="GET", target="/ws",
                       headers=[(k, v) for k, v in base.items() if v != ""])


def test_valid_handshake_collects_subprotocols_and_offers() -> None:
    hs = parse_handshake(request(sec_websocket_protocol="a, b", sec_websocket_extensions="permessage-deflate"))
    assert hs.subprotocols == ["a", "b"]
    assert hs.extension_offers == ["permessage-deflate"]
    data, extensions = accept_response(hs, subprotocol="b", app_headers=[(b"x-a", b"1")],
                                       default_headers=[(b"server", b"pounce")], deflate=True)
    assert data.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"sec-websocket-protocol: b\r\n" in data
    assert b"sec-websocket-extensions: permessage-deflate\r\n" in data
    assert b"x-a: 1\r\n" in data
    assert len(extensions) == 1
    with pytest.raises(RuntimeError):
        accept_response(hs, subprotocol="c", app_headers=[], default_headers=[], deflate=False)


@pytest.mark.parametrize(("headers", "status"), [
    ({"sec_websocket_key": ""}, 400),
    ({"sec_websocket_key": "not base64!"}, 400),
    ({"sec_websocket_version": ""}, 426),
    ({"sec_websocket_version": "7"}, 426),
    ({"connection": "keep-alive"}, 400),
])
def test_bad_handshakes(headers: dict[str, str], status: int) -> None:
    with pytest.raises(HandshakeError) as info:
        parse_handshake(request(**headers))
    assert info.value.status == status


def test_deflate_takes_the_first_offer_it_can_honour() -> None:
    agreed = negotiate_deflate(["x-webkit-deflate-frame", "permessage-deflate; server_max_window_bits=8",
                                "permessage-deflate; client_max_window_bits"])
    assert agreed is not None
    assert agreed[1] == b"permessage-deflate; client_max_window_bits=15"
    assert negotiate_deflate(["x-other"]) is None


def test_session_reassembles_and_limits() -> None:
    session = WebSocketSession([], max_message_size=10)
    messages = session.receive_data(frame(0x1, b"abc", fin=False) + frame(0x0, b"def"))
    assert messages == [{"type": "websocket.receive", "text": "abcdef"}]
    assert session.receive_data(frame(0x9, b"p")) == []
    assert session.data_to_send() == b"\x8a\x01p"  # pong, unmasked
    messages = session.receive_data(frame(0x2, b"x" * 6, fin=False) + frame(0x0, b"y" * 6))
    assert messages == [{"type": "websocket.disconnect", "code": 1009, "reason": "message too big"}]
    assert session.data_to_send()[:4] == b"\x88\x11\x03\xf1"  # close 1009
    assert not session.finished  # waits for the peer's reply
    assert session.receive_data(close_frame(1009)) == []
    assert session.finished


def test_session_peer_close_is_echoed_once() -> None:
    session = WebSocketSession([], max_message_size=100)
    messages = session.receive_data(close_frame(4000, "bye"))
    assert messages == [{"type": "websocket.disconnect", "code": 4000, "reason": "bye"}]
    assert session.data_to_send() == b"\x88\x02\x0f\xa0"
    assert session.finished
    assert session.receive_data(None) == []


def test_subprotocol_given_as_a_header_is_honoured_once() -> None:
    hs = parse_handshake(request(sec_websocket_protocol="graphql-ws"))
    data, _ = accept_response(hs, subprotocol=None, app_headers=[(b"sec-websocket-protocol", b"graphql-ws")],
                              default_headers=[], deflate=False)
    assert data.count(b"sec-websocket-protocol: graphql-ws\r\n") == 1


def test_text_limit_counts_utf8_bytes() -> None:
    session = WebSocketSession([], max_message_size=10)
    assert session.receive_data(frame(0x1, "ééééé".encode())) == [{"type": "websocket.receive", "text": "ééééé"}]
    messages = session.receive_data(frame(0x1, "éééééé".encode()))  # 6 characters, 12 bytes
    assert messages[0]["code"] == 1009
