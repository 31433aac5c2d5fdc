"""Security checks on a real pounce: proxy trust from a second loopback
address, no version leaked, error responses that never echo the request,
unix-socket permissions from the command line, TLS versions below the
minimum refused."""

from __future__ import annotations

import json
import ssl
import stat
import warnings
from pathlib import Path
from typing import Any

import pytest

import testapps
from tests.helpers import connect, exchange, fetch

Scope = dict[str, Any]

FORWARDED = (b"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n"
             b"X-Forwarded-Host: evil.example\r\nForwarded: for=198.51.100.9;proto=https\r\n")


def scope_from(port: int, source: str) -> dict[str, Any]:
    data = exchange(port, b"GET / HTTP/1.1\r\nHost: real.example\r\n" + FORWARDED
                    + b"Connection: close\r\n\r\n", source=source)
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def test_proxy_headers_ignored_from_an_untrusted_loopback_peer(serve: Any) -> None:
    """The default trusts 127.0.0.1 only: the same headers from 127.0.0.2
    change nothing, from 127.0.0.1 they are applied (the control)."""
    srv = serve(testapps.echo_scope, lifespan="off")
    untrusted = scope_from(srv.port, "127.0.0.2")
    assert untrusted["client"][0] == "127.0.0.2"
    assert untrusted["scheme"] == "http"
    assert [v for n, v in untrusted["headers"] if n == "host"] == ["real.example"]
    trusted = scope_from(srv.port, "127.0.0.1")
    assert trusted["client"][0] in ("203.0.113.7", "198.51.100.9") and trusted["scheme"] == "https"


def test_proxy_trust_names_the_second_loopback_address(serve: Any) -> None:
    srv = serve(testapps.echo_scope, lifespan="off", forwarded_allow_ips=["127.0.0.2"])
    assert scope_from(srv.port, "127.0.0.2")["scheme"] == "https"
    assert scope_from(srv.port, "127.0.0.1")["scheme"] == "http"


# -- no version leaked, nothing echoed -------------------------------------------------

MARK = b"<script>alert(1)</script>"


async def marked_app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.close", "code": 1008})
        return
    if scope["type"] != "http":
        return
    if scope["path"].startswith("/raise"):
        raise RuntimeError("failure mentioning " + scope["path"] + MARK.decode())
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"fine"})


H = b"Host: a\r\n"
WS = (b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      b"Sec-WebSocket-Version: 13\r\n")

BAD_REQUESTS = {
    "bad target characters (400)": b"GET /" + MARK + b"\x01 HTTP/1.1\r\n" + H + b"\r\n",
    "bad header name (400)": b"GET / HTTP/1.1\r\n" + H + MARK + b": 1\r\n\r\n",
    "bad header value (400)": b"GET / HTTP/1.1\r\n" + H + b"X-A: " + MARK + b"\x00\r\n\r\n",
    "bad Content-Length (400)": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: " + MARK + b"\r\n\r\n",
    "bad chunk size (400)": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + MARK
                            + b"\r\n\r\n",
    "unknown coding (501)": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: " + MARK + b"\r\n\r\n",
    "bad version (505)": b"GET /" + MARK[1:7] + b" HTTP/2.0\r\n" + H + b"\r\n",
    "head too large (431)": b"GET / HTTP/1.1\r\n" + H + b"X-A: " + MARK * 800 + b"\r\n\r\n",
    "target too long (414)": b"GET /" + b"a" * 20000 + MARK + b" HTTP/1.1\r\n" + H + b"\r\n",
    "body too large (413)": b"POST /?" + MARK[1:7] + b" HTTP/1.1\r\n" + H + b"Content-Length: 5000\r\n\r\n"
                            + MARK * 10,
    "app error (500)": b"GET /raise/" + MARK[1:7] + b" HTTP/1.1\r\n" + H + b"\r\n",
    "ws bad key (400)": b"GET / HTTP/1.1\r\n" + H + WS.replace(b"dGhlIHNhbXBsZSBub25jZQ==", MARK)
                        + b"\r\n",
    "ws bad version (426)": b"GET / HTTP/1.1\r\n" + H + WS.replace(b"Version: 13", b"Version: " + MARK)
                            + b"\r\n",
    "ws denied (403)": b"GET /" + MARK[1:7] + b" HTTP/1.1\r\n" + H + WS + b"\r\n",
    "ok (200)": b"GET / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n",
}


@pytest.mark.parametrize("server_header", [False, True], ids=["server_header_off", "server_header_on"])
def test_no_version_leaked_and_no_request_data_echoed(serve: Any, server_header: bool) -> None:
    import pounce

    srv = serve(marked_app, lifespan="off", logging_access_log=False, server_header=server_header,
                http_max_request_body_size=1000)
    version = getattr(pounce, "__version__", "0.1.0").encode()
    wrong = []
    for name, request in BAD_REQUESTS.items():
        status = int(name.rsplit("(", 1)[1][:3])
        data = exchange(srv.port, request)
        if not data.startswith(b"HTTP/1.1 %d " % status):
            wrong.append((name, data[:120]))
        head, _, body = data.partition(b"\r\n\r\n")
        lower = data.lower()
        # Nothing of the request comes back, raw or escaped.
        for probe in (MARK, b"script", b"alert(", b"&lt;", b"%3cscript"):
            assert probe not in lower, (name, data[:300])
        assert version not in data, (name, head)
        servers = [line for line in head.lower().split(b"\r\n") if line.startswith(b"server:")]
        if server_header:
            assert servers == [b"server: pounce"], (name, head)  # a name, no version
        else:
            assert servers == [] and b"pounce" not in lower, (name, data[:300])
    assert wrong == []


def test_uds_permissions_from_the_command_line(pounce_process: Any, tmp_path: Path) -> None:
    """Covered in-process by tests/integration/test_server.py::test_uds_permissions; this
    is the flag a deployment uses, and the socket answers."""
    path = tmp_path / "app.sock"
    pounce_process("testapps:hello", "--uds", str(path), "--uds-permissions", "660")
    assert stat.S_IMODE(path.stat().st_mode) == 0o660
    head, body = fetch(str(path))
    assert head.startswith(b"HTTP/1.1 200") and body == b"Hello, world!"


def test_tls_below_the_minimum_is_refused(serve: Any, tmp_path: Path) -> None:
    """The default minimum is TLS 1.2: a TLS 1.1 client gets no session
    (test_tls.py covers 1.2 vs 1.3); the server goes on serving."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    pem = tmp_path / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    srv = serve(testapps.hello, lifespan="off", tls_certfile=str(pem))

    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(old)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # that is the point
            old.minimum_version = ssl.TLSVersion.TLSv1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot make a TLS 1.1 client")
    with connect(srv.port) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with old.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                tls.recv(100)
    good = ssl.create_default_context()
    ca.configure_trust(good)
    with connect(srv.port) as raw:
        with good.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            tls.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            assert tls.recv(100).startswith(b"HTTP/1.1 200")
