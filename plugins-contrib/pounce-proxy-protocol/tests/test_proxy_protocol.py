"""pounce-proxy-protocol against a real pounce server and raw sockets.

The plugin is activated the way a user activates it, by name through the
``pounce.plugins`` entry point (``[plugins] enable``), never passed in as an
object. The parser is also tested with bytes alone.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pounce_proxy_protocol import ProxyHeaderError, parse, v1_header, v2_header
from pounce_proxy_protocol.parser import MissingHeader

from pounce.testing import ServerProcess, ServerThread, run_pounce

REQUEST = b"GET / HTTP/1.1\r\nhost: example\r\n\r\n"
CLIENT = ("203.0.113.7", 55123)
BALANCED = ("198.51.100.1", 443)


async def client_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the ASGI client it was given (over HTTP or WebSocket)."""
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(scope["client"])})
        await send({"type": "websocket.close"})
        return
    if scope["type"] != "http":
        return
    body = json.dumps({"client": scope["client"]}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def server() -> Iterator[Any]:
    started: list[ServerThread] = []

    def start(**overrides: Any) -> ServerThread:
        overrides.setdefault("plugins_enable", ["proxy_protocol"])
        srv = ServerThread(client_app, **overrides).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


def exchange(port: int, *chunks: bytes, host: str = "127.0.0.1") -> bytes:
    """Send ``chunks`` one by one, then read until the server closes or one
    full response has arrived; bounded by the socket timeout."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect((host, port))
        for chunk in chunks:
            sock.sendall(chunk)
        data = b""
        while True:
            try:
                part = sock.recv(65536)
            except ConnectionResetError:
                return data
            if not part:
                return data
            data += part
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep and b"content-length" in head.lower():
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                if len(body) >= length:
                    return data


def client_of(response: bytes) -> list[Any]:
    assert response.startswith(b"HTTP/1.1 200"), response
    return json.loads(response.partition(b"\r\n\r\n")[2])["client"]


# -- the parser, bytes alone ---------------------------------------------------


def test_parse_v1_tcp4_and_tcp6() -> None:
    header, used = parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\r\nGET")  # type: ignore[misc]
    assert (header.version, header.source, header.destination, used) == (1, ("1.2.3.4", 1111), ("5.6.7.8", 80), 36)
    header, _ = parse(b"PROXY TCP6 2001:db8::1 ::1 65535 8080\r\n")  # type: ignore[misc]
    assert header.source == ("2001:db8::1", 65535)
    header, _ = parse(b"PROXY UNKNOWN whatever\r\n")  # type: ignore[misc]
    assert header.source is None


def test_parse_v2_inet_inet6_local_and_tlvs() -> None:
    raw = v2_header(("10.1.2.3", 4000), ("10.0.0.1", 443), tlvs=b"\x04\x00\x01x")
    header, used = parse(raw + b"rest")  # type: ignore[misc]
    assert (header.version, header.source, header.destination, used) == (2, ("10.1.2.3", 4000), ("10.0.0.1", 443), len(raw))
    header, _ = parse(v2_header(("2001:db8::7", 9), ("2001:db8::1", 80)))  # type: ignore[misc]
    assert header.source == ("2001:db8::7", 9)
    header, _ = parse(v2_header(None, None))  # type: ignore[misc]
    assert header.source is None


def test_parse_needs_more_data_at_every_prefix() -> None:
    for raw in (v1_header(CLIENT, BALANCED), v2_header(CLIENT, BALANCED)):
        for cut in range(len(raw)):
            assert parse(raw[:cut]) is None, (raw, cut)
        assert parse(raw) is not None


@pytest.mark.parametrize("raw", [
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1111\r\n",          # a field missing
    b"PROXY TCP4 1.2.3.999 5.6.7.8 1111 80\r\n",     # bad address
    b"PROXY TCP4 ::1 ::1 1111 80\r\n",               # family mismatch
    b"PROXY TCP4 1.2.3.4 5.6.7.8 70000 80\r\n",      # port out of range
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\n",         # LF without CR
    b"PROXY " + b"x" * 120,                           # no CRLF within 107 bytes
    b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + bytes(12),  # v2 header with version 3
    b"\r\n\r\n\x00\r\nQUIT\n\x2f\x11\x00\x0c" + bytes(12),  # unknown command
    b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x04" + bytes(4),   # IPv4 block too short
])
def test_parse_rejects_malformed(raw: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse(raw)


def test_parse_reports_a_missing_header() -> None:
    with pytest.raises(MissingHeader):
        parse(REQUEST)


# -- a real server -------------------------------------------------------------


def test_v1_header_sets_the_asgi_client(server: Any) -> None:
    srv = server()
    assert client_of(exchange(srv.port, v1_header(CLIENT, BALANCED) + REQUEST)) == list(CLIENT)


def test_v2_header_sets_the_asgi_client_ipv4_and_ipv6(server: Any) -> None:
    srv = server()
    assert client_of(exchange(srv.port, v2_header(CLIENT, BALANCED) + REQUEST)) == list(CLIENT)
    six = ("2001:db8::42", 6000)
    assert client_of(exchange(srv.port, v2_header(six, ("2001:db8::1", 443)), REQUEST)) == list(six)


def test_header_split_into_single_bytes_then_keep_alive(server: Any) -> None:
    srv = server()
    header = v1_header(CLIENT, BALANCED)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        for i in range(len(header)):
            sock.sendall(header[i:i + 1])
        for _ in range(2):  # the client holds for the whole connection
            sock.sendall(REQUEST)
            data = b""
            while not data.endswith(b"}"):
                part = sock.recv(4096)
                assert part, "server closed a keep-alive connection"
                data += part
            assert client_of(data) == list(CLIENT)


def test_websocket_upgrade_after_the_header(server: Any) -> None:
    srv = server()
    key = base64.b64encode(os.urandom(16))
    handshake = (b"GET /ws HTTP/1.1\r\nhost: example\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
                 b"sec-websocket-key: " + key + b"\r\nsec-websocket-version: 13\r\n\r\n")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(v2_header(CLIENT, BALANCED) + handshake)
        data = b""
        while b"\x88" not in data:  # until the close frame
            part = sock.recv(4096)
            assert part, data
            data += part
    assert data.startswith(b"HTTP/1.1 101")
    frame = data.partition(b"\r\n\r\n")[2]
    assert frame[0] == 0x81  # one unmasked text frame
    assert json.loads(frame[2:2 + frame[1]]) == list(CLIENT)


def test_v2_local_command_keeps_the_socket_peer(server: Any) -> None:
    srv = server()
    assert client_of(exchange(srv.port, v2_header(None, None) + REQUEST))[0] == "127.0.0.1"


def test_missing_header_from_trusted_peer_closes_when_required(server: Any) -> None:
    srv = server()
    assert exchange(srv.port, REQUEST) == b""


def test_malformed_header_closes_the_connection(server: Any) -> None:
    srv = server()
    assert exchange(srv.port, b"PROXY TCP4 1.2.3.4 nonsense\r\n" + REQUEST) == b""
    assert exchange(srv.port, b"\r\n\r\n\x00\r\nQUIT\n\x99\x11\x00\x00" + REQUEST) == b""


def test_missing_header_allowed_when_not_required(server: Any) -> None:
    srv = server(proxy_protocol_required=False)
    assert client_of(exchange(srv.port, REQUEST))[0] == "127.0.0.1"
    assert client_of(exchange(srv.port, v1_header(CLIENT, BALANCED) + REQUEST)) == list(CLIENT)


def test_untrusted_peer_cannot_claim_an_address(server: Any) -> None:
    srv = server(proxy_protocol_trusted=["10.0.0.0/8"])
    # Not parsed: the header is just bad HTTP from an untrusted peer.
    assert exchange(srv.port, v1_header(CLIENT, BALANCED) + REQUEST).startswith(b"HTTP/1.1 400")
    assert client_of(exchange(srv.port, REQUEST))[0] == "127.0.0.1"


def test_header_timeout_closes_a_silent_trusted_peer(server: Any) -> None:
    srv = server(proxy_protocol_timeout=0.3)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(b"PROXY TCP4")
        assert sock.recv(100) == b""


# -- as a user runs it: pounce.toml and the pounce command ----------------------------


APP_MODULE = '''
import json

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = json.dumps({"client": scope["client"]}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
'''


def test_enabled_from_pounce_toml_in_the_pounce_command(tmp_path: Path) -> None:
    (tmp_path / "clientapp.py").write_text(APP_MODULE)
    (tmp_path / "pounce.toml").write_text(textwrap.dedent("""
        [server]
        app = "clientapp:app"
        port = 0

        [plugins]
        enable = ["proxy_protocol"]

        [proxy_protocol]
        trusted = ["127.0.0.0/8"]
    """))
    with ServerProcess(["--config", "pounce.toml", "--app-dir", str(tmp_path)], cwd=tmp_path) as proc:
        port = int(proc.url.rsplit(":", 1)[1])  # type: ignore[union-attr]
        assert client_of(exchange(port, v2_header(CLIENT, BALANCED) + REQUEST)) == list(CLIENT)
        assert "PROXY protocol v1/v2 (required) from: 127.0.0.0/8" in proc.output()
    listing = run_pounce(["--list-plugins"], cwd=tmp_path)
    assert listing.returncode == 0
    line = next(ln for ln in listing.stdout.splitlines() if ln.startswith("proxy_protocol "))
    assert "pounce-proxy-protocol" in line and "pounce_wrap_protocol" in line


def test_bad_trusted_entry_and_tls_are_config_errors(tmp_path: Path) -> None:
    # Checked in pounce_configure, so the server refuses to start (exit 2).
    bad = run_pounce(["pounce.demo:app", "--port", "0", "--plugin", "proxy_protocol",
                      "--proxy-protocol-trusted", "10.0.0.0/33"], cwd=tmp_path)
    assert bad.returncode == 2, bad.stderr
    assert "[proxy_protocol] trusted" in bad.stderr and "10.0.0.0/33" in bad.stderr
    tls = run_pounce(["pounce.demo:app", "--port", "0", "--plugin", "proxy_protocol",
                      "--ssl-certfile", sys.executable], cwd=tmp_path)
    assert tls.returncode == 2
    assert "[tls] certfile" in tls.stderr
