"""HTTPS and WSS: the built-in ``tls`` plugin and the ``pounce_tls_context`` hook.

Certificates come from trustme; clients are httpx, the ssl module, curl and
the websockets client, all against a real server on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from pounce import hookimpl
from pounce.plugins.tls import build_context
from pounce.testing import ServerThread, capture_logs, run_pounce, wait_for
from tests.helpers import (
    ROOT,
    connect,
    exchange,
    holds,
    need_command,
    read_until_closed,
    rst_close,
    subprocess_env,
)

# -- certificates --------------------------------------------------------------------


class Certs:
    """A CA, a server certificate for 127.0.0.1/localhost and a client
    certificate, written as PEM files in a temporary directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = trustme.CA()
        self.server = self.ca.issue_cert("localhost", "127.0.0.1")
        self.client = self.ca.issue_cert("client@example.org", common_name="alice, the client")
        self.ca_pem = self.write("ca.pem", self.ca.cert_pem.bytes())
        self.cert = self.write("server.crt", self.server.cert_chain_pems[0].bytes())
        self.key = self.write("server.key", self.server.private_key_pem.bytes())
        self.both = self.write("both.pem", self.server.private_key_and_cert_chain_pem.bytes())
        self.client_both = self.write("client.pem", self.client.private_key_and_cert_chain_pem.bytes())

    def write(self, name: str, data: bytes) -> str:
        path = self.root / name
        path.write_bytes(data)
        return str(path)

    def client_context(self, *, client_cert: str | None = None, **kw: Any) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_pem)
        if client_cert:
            context.load_cert_chain(client_cert)
        for key, value in kw.items():
            setattr(context, key, value)
        return context


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return Certs(tmp_path)


async def tls_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the scheme and the ``tls`` extension as JSON; WebSocket
    connections get the same JSON as their first message."""
    if scope["type"] == "lifespan":
        return
    payload = json.dumps({"scheme": scope["scheme"], "tls": scope.get("extensions", {}).get("tls")})
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": payload})
        await send({"type": "websocket.close", "code": 1000})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": payload.encode()})


def get_json(srv: ServerThread, context: ssl.SSLContext) -> dict[str, Any]:
    response = httpx.get(srv.url, verify=context, timeout=10)
    assert response.status_code == 200
    return response.json()


def raw_request(port: int, context: ssl.SSLContext) -> tuple[str | None, bytes]:
    """Connect with the ssl module, send one request; return the ALPN
    protocol chosen and the whole response (empty if the server closed)."""
    with connect(port, timeout=10) as sock, context.wrap_socket(sock, server_hostname="localhost") as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        return tls.selected_alpn_protocol(), read_until_closed(tls, 10)[0]


# -- HTTPS basics ------------------------------------------------------------------


def test_https_with_cert_and_separate_key(serve, certs: Certs) -> None:
    srv = serve(tls_app, tls_certfile=certs.cert, tls_keyfile=certs.key)
    assert srv.url.startswith("https://127.0.0.1:")
    body = get_json(srv, certs.client_context())
    assert body["scheme"] == "https"
    tls = body["tls"]
    assert tls["tls_version"] == 0x0304
    assert tls["cipher_suite"] in (0x1301, 0x1302, 0x1303)
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None
    assert tls["server_cert"] == certs.server.cert_chain_pems[0].bytes().decode()


def test_key_inside_cert_file(serve, certs: Certs) -> None:
    srv = serve(tls_app, tls_certfile=certs.both)
    assert get_json(srv, certs.client_context())["scheme"] == "https"


def test_plain_http_server_has_no_tls_extension(serve) -> None:
    srv = serve(tls_app)
    body = httpx.get(srv.url).json()
    assert body == {"scheme": "http", "tls": None}


def test_tls12_version_and_cipher_numbers(serve, certs: Certs) -> None:
    """tls_version and cipher_suite are the IANA integers, not OpenSSL names."""
    srv = serve(tls_app, tls_certfile=certs.both)
    context = certs.client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
    context.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")  # trustme keys are ECDSA
    tls = get_json(srv, context)["tls"]
    assert tls["tls_version"] == 0x0303
    assert tls["cipher_suite"] == 0xC02B


def test_server_ciphers_option(serve, certs: Certs) -> None:
    srv = serve(tls_app, tls_certfile=certs.both, tls_ciphers="ECDHE-ECDSA-AES256-GCM-SHA384")
    context = certs.client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
    context.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384")
    assert get_json(srv, context)["tls"]["cipher_suite"] == 0xC02C


def test_minimum_version_default_is_tls12(serve, certs: Certs) -> None:
    from pounce import ServerConfig

    config = ServerConfig.load(None, env={}, discover=False, tls_certfile=certs.both)
    context = build_context(config)
    assert context is not None and context.minimum_version == ssl.TLSVersion.TLSv1_2
    srv = serve(tls_app, tls_certfile=certs.both)
    tls12 = certs.client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
    assert get_json(srv, tls12)["tls"]["tls_version"] == 0x0303


def test_minimum_version_tls13(serve, certs: Certs) -> None:
    srv = serve(tls_app, tls_certfile=certs.both, tls_minimum_version="TLSv1.3")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        raw_request(srv.port, certs.client_context(maximum_version=ssl.TLSVersion.TLSv1_2))
    assert get_json(srv, certs.client_context())["tls"]["tls_version"] == 0x0304


def _alpn_chosen(port: int, context: ssl.SSLContext) -> str | None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock, \
            context.wrap_socket(sock, server_hostname="localhost") as tls:
        return tls.selected_alpn_protocol()


def test_alpn_offers_h2_then_http11(serve, certs: Certs) -> None:
    srv = serve(tls_app, tls_certfile=certs.both)
    context = certs.client_context()
    context.set_alpn_protocols(["http/1.1"])
    alpn, response = raw_request(srv.port, context)
    assert alpn == "http/1.1"
    assert response.startswith(b"HTTP/1.1 200")
    context = certs.client_context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    assert _alpn_chosen(srv.port, context) == "h2"
    # --no-http2: HTTP/1.1 only, whatever the client prefers.
    plain = serve(tls_app, tls_certfile=certs.both, http2_enabled=False)
    alpn, response = raw_request(plain.port, context)
    assert alpn == "http/1.1" and response.startswith(b"HTTP/1.1 200")


def test_encrypted_key_with_password(serve, certs: Certs) -> None:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(certs.server.private_key_pem.bytes(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret"),
    )
    keyfile = certs.write("encrypted.key", encrypted)
    srv = serve(tls_app, tls_certfile=certs.cert, tls_keyfile=keyfile, tls_keyfile_password="s3cret")
    assert get_json(srv, certs.client_context())["scheme"] == "https"


def test_chain_with_intermediate_both_ways(serve, tmp_path: Path) -> None:
    """certfile holds leaf + intermediate (clients trust only the root); a
    client certificate from the intermediate is verified against the root."""
    root = trustme.CA()
    intermediate = root.create_child_ca()
    server = intermediate.issue_cert("localhost", "127.0.0.1")
    client = intermediate.issue_cert("bob@example.org", common_name="bob")
    (tmp_path / "chain.pem").write_bytes(server.private_key_and_cert_chain_pem.bytes())
    (tmp_path / "root.pem").write_bytes(root.cert_pem.bytes())
    (tmp_path / "client.pem").write_bytes(client.private_key_and_cert_chain_pem.bytes())
    srv = serve(tls_app, tls_certfile=str(tmp_path / "chain.pem"), tls_ca_certs=str(tmp_path / "root.pem"),
                tls_cert_reqs="required")
    context = ssl.create_default_context(cafile=str(tmp_path / "root.pem"))
    context.load_cert_chain(str(tmp_path / "client.pem"))
    tls = get_json(srv, context)["tls"]
    assert tls["server_cert"] == server.cert_chain_pems[0].bytes().decode()  # the leaf only
    chain = tls["client_cert_chain"]
    assert chain[0] == client.cert_chain_pems[0].bytes().decode()
    assert chain[1:] in ([], [intermediate.cert_pem.bytes().decode()])  # the rest needs Python 3.13+
    assert tls["client_cert_name"].startswith("CN=bob,")


def test_tls_over_unix_socket(serve, certs: Certs, tmp_path: Path) -> None:
    path = str(tmp_path / "tls.sock")
    serve(tls_app, uds=path, tls_certfile=certs.both)
    transport = httpx.HTTPTransport(uds=path, verify=certs.client_context())
    with httpx.Client(transport=transport, timeout=10) as client:
        body = client.get("https://localhost/").json()
    assert body["scheme"] == "https"
    assert body["tls"]["tls_version"] == 0x0304


async def big_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body, answers with it reversed, in several chunks."""
    if scope["type"] != "http":
        return
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    body.reverse()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    step = 1 << 20
    for start in range(0, len(body), step):
        await send({"type": "http.response.body", "body": bytes(body[start:start + step]), "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def test_large_bodies_and_keep_alive(serve, certs: Certs) -> None:
    srv = serve(big_echo, tls_certfile=certs.both)
    payload = os.urandom(3 * 1024 * 1024 + 17)
    with httpx.Client(verify=certs.client_context(), timeout=30) as client:
        for _ in range(3):  # one connection, kept alive
            response = client.post(srv.url, content=payload)
            assert response.status_code == 200
            assert response.content == payload[::-1]


# -- client certificates -------------------------------------------------------------


def test_cert_reqs_none_does_not_ask(serve, certs: Certs) -> None:
    srv = serve(tls_app, tls_certfile=certs.both, tls_ca_certs=certs.ca_pem, tls_cert_reqs="none")
    tls = get_json(srv, certs.client_context(client_cert=certs.client_both))["tls"]
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None


def test_cert_reqs_optional(serve, certs: Certs) -> None:
    srv = serve(tls_app, tls_certfile=certs.both, tls_ca_certs=certs.ca_pem, tls_cert_reqs="optional")
    anonymous = get_json(srv, certs.client_context())["tls"]
    assert anonymous["client_cert_chain"] == []
    assert anonymous["client_cert_name"] is None
    tls = get_json(srv, certs.client_context(client_cert=certs.client_both))["tls"]
    assert tls["client_cert_chain"][0] == certs.client.cert_chain_pems[0].bytes().decode()
    assert tls["client_cert_name"].startswith("CN=alice\\, the client,OU=Testing cert")
    assert tls["client_cert_error"] is None


def test_cert_reqs_required(serve, certs: Certs, tmp_path: Path) -> None:
    srv = serve(tls_app, tls_certfile=certs.both, tls_ca_certs=certs.ca_pem, tls_cert_reqs="required")
    tls = get_json(srv, certs.client_context(client_cert=certs.client_both))["tls"]
    assert tls["client_cert_chain"][0] == certs.client.cert_chain_pems[0].bytes().decode()
    assert tls["client_cert_name"].startswith("CN=alice")
    # No certificate, or one from another CA: refused (with TLS 1.3 the
    # refusal arrives after the client's side of the handshake).
    other = trustme.CA().issue_cert("mallory@example.org")
    stranger = certs.write("stranger.pem", other.private_key_and_cert_chain_pem.bytes())
    for context in (certs.client_context(), certs.client_context(client_cert=stranger)):
        try:
            _, response = raw_request(srv.port, context)
        except (ssl.SSLError, ConnectionError):
            response = b""
        assert response == b""
    # Still serving.
    assert get_json(srv, certs.client_context(client_cert=certs.client_both))["scheme"] == "https"


def test_cert_reqs_uvicorn_numbers(tmp_path: Path, certs: Certs) -> None:
    """``--ssl-cert-reqs 2`` means required, as in uvicorn."""
    result = run_pounce(["testapps:hello", "--ssl-certfile", certs.both, "--ssl-cert-reqs", "2",
                         "--ssl-ca-certs", certs.ca_pem, "--check"],
                        cwd=tmp_path, env=subprocess_env())
    assert result.returncode == 0, result.stderr
    assert "required" in result.stdout


# -- configuration errors: one line, exit 2, nothing bound ----------------------------


def _encrypted_key(certs: Certs) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(certs.server.private_key_pem.bytes(), None)
    return certs.write("enc.key", key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(b"right"),
    ))


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing_cert", ["--ssl-certfile: expected", "nope.pem", "no such file"]),
        ("missing_key", ["--ssl-keyfile: expected", "nope.key", "no such file"]),
        ("mismatch", ["--ssl-keyfile: expected the private key of the certificate", "does not match"]),
        ("wrong_password", ["--ssl-keyfile-password: expected the password", "wrong password"]),
        ("no_password", ["[tls] keyfile_password: expected the password", "found none"]),
        ("directory", ["--ssl-certfile: expected a readable PEM", "(a directory)"]),
        ("not_pem", ["--ssl-certfile: expected a PEM certificate", "found none in"]),
        ("key_without_cert", ["--ssl-keyfile: expected certfile to be set as well", "without a certificate"]),
        ("no_key_anywhere", ["expected the private key", "no private key in"]),
        ("bad_ciphers", ["--ssl-ciphers: expected an OpenSSL cipher string", "'NOPE-CIPHER'"]),
        ("required_without_ca", ["--ssl-cert-reqs: expected ca_certs", "'required'"]),
        ("missing_ca", ["--ssl-ca-certs: expected", "no such file"]),
    ],
)
def test_config_errors_exit_2_before_binding(tmp_path: Path, certs: Certs, case: str,
                                             expected: list[str]) -> None:
    other = trustme.CA().issue_cert("localhost")
    other_key = certs.write("other.key", other.private_key_pem.bytes())
    notes = certs.write("notes.txt", b"hello, not a certificate\n")
    args = {
        "missing_cert": ["--ssl-certfile", str(tmp_path / "nope.pem")],
        "missing_key": ["--ssl-certfile", certs.cert, "--ssl-keyfile", str(tmp_path / "nope.key")],
        "mismatch": ["--ssl-certfile", certs.cert, "--ssl-keyfile", other_key],
        "wrong_password": ["--ssl-certfile", certs.cert, "--ssl-keyfile", _encrypted_key(certs),
                           "--ssl-keyfile-password", "wrong"],
        "no_password": ["--ssl-certfile", certs.cert, "--ssl-keyfile", _encrypted_key(certs)],
        "directory": ["--ssl-certfile", str(tmp_path)],
        "not_pem": ["--ssl-certfile", notes],
        "key_without_cert": ["--ssl-keyfile", certs.key],
        "no_key_anywhere": ["--ssl-certfile", certs.cert],
        "bad_ciphers": ["--ssl-certfile", certs.both, "--ssl-ciphers", "NOPE-CIPHER"],
        "required_without_ca": ["--ssl-certfile", certs.both, "--ssl-cert-reqs", "required"],
        "missing_ca": ["--ssl-certfile", certs.both, "--ssl-ca-certs", str(tmp_path / "none.pem"),
                       "--ssl-cert-reqs", "required"],
    }[case]
    result = run_pounce(["testapps:hello", "--port", "0", *args], cwd=tmp_path, env=subprocess_env(), timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "listening on" not in result.stdout + result.stderr
    for part in expected:
        assert part in lines[0], lines[0]


def test_config_error_names_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "pounce.toml").write_text('[server]\napp = "testapps:hello"\nport = 0\n'
                                          '[tls]\ncertfile = "missing.pem"\n')
    result = run_pounce([], cwd=tmp_path, env=subprocess_env())
    assert result.returncode == 2
    assert result.stderr.strip().startswith("pounce: error: pounce.toml: [tls] certfile: expected"), result.stderr
    assert "'missing.pem' (no such file)" in result.stderr


def test_config_error_names_the_environment(tmp_path: Path) -> None:
    env = subprocess_env({"POUNCE_TLS_CERTFILE": str(tmp_path / "gone.pem")})
    result = run_pounce(["testapps:hello", "--port", "0"], cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "environment POUNCE_TLS_CERTFILE: expected" in result.stderr


def test_programmatic_error_is_config_error(certs: Certs) -> None:
    from pounce import ConfigError

    with pytest.raises(ConfigError, match=r"override tls_keyfile: expected the private key"):
        other = trustme.CA().issue_cert("localhost")
        ServerThread(tls_app, tls_certfile=certs.cert,
                     tls_keyfile=certs.write("o.key", other.private_key_pem.bytes())).start()


# -- bad clients: dropped quietly, the worker keeps serving -----------------------------


def _garbage_clients(port: int) -> None:
    # Plain HTTP to the TLS port.
    reply = exchange(port, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    assert b"HTTP/1.1 200" not in reply
    # Random bytes.
    with connect(port) as sock:
        sock.sendall(os.urandom(2048))
        try:
            assert b"HTTP/1.1" not in sock.recv(4096)
        except (ConnectionResetError, TimeoutError):
            pass
    # A handshake that starts, then the client aborts (RST) half way.
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        client.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    with connect(port) as sock:
        sock.sendall(hello[: len(hello) // 2])
        time.sleep(0.05)  # the scenario: the server has half a hello when the reset comes
        rst_close(sock)
    # A client that does not trust the server certificate aborts the handshake.
    with pytest.raises(ssl.SSLCertVerificationError):
        raw_request(port, ssl.create_default_context())


@pytest.mark.slow
@pytest.mark.parametrize("debug", [False, True], ids=["default", "asyncio-debug"])
def test_bad_clients_are_dropped_without_traceback(pounce_process, certs: Certs, debug: bool) -> None:
    """In asyncio debug mode every failed handshake is logged with a
    traceback unless pounce filters it down to one line."""
    extra = ("--log-level", "debug") if debug else ()
    env = {"PYTHONASYNCIODEBUG": "1"} if debug else None
    proc = pounce_process("testapps:hello", "--port", "0", "--ssl-certfile", certs.both, *extra, env=env)
    assert proc.url.startswith("https://")
    for _ in range(2):
        _garbage_clients(proc.port)
        response = httpx.get(proc.url, verify=certs.client_context(), timeout=10)
        assert response.status_code == 200
        assert response.text == "Hello, world!"
    assert proc.proc is not None and proc.proc.poll() is None
    assert proc.stop() == 0  # and with it, everything it had to log is out
    output = proc.output()
    assert "Traceback" not in output, output
    if debug:
        assert "SSLError: [SSL: HTTP_REQUEST]" in output  # the one line is still there


def test_refused_client_certificates_leave_no_traceback(pounce_process, certs: Certs) -> None:
    proc = pounce_process("testapps:hello", "--port", "0", "--ssl-certfile", certs.both,
                          "--ssl-ca-certs", certs.ca_pem, "--ssl-cert-reqs", "required",
                          env={"PYTHONASYNCIODEBUG": "1"})
    port = proc.port
    stranger = certs.write("stranger.pem", trustme.CA().issue_cert("eve@example.org")
                           .private_key_and_cert_chain_pem.bytes())
    tls12 = {"maximum_version": ssl.TLSVersion.TLSv1_2}
    for kw in ({}, {"client_cert": stranger}, tls12, {"client_cert": stranger, **tls12}):
        try:
            _, response = raw_request(port, certs.client_context(**kw))
        except (ssl.SSLError, ConnectionError):
            response = b""
        assert response == b""
    _, response = raw_request(port, certs.client_context(client_cert=certs.client_both))
    assert response.startswith(b"HTTP/1.1 200")
    assert proc.stop() == 0  # and with it, everything it had to log is out
    assert "Traceback" not in proc.output(), proc.output()


@pytest.mark.slow
def test_stalled_handshake_times_out(serve, certs: Certs) -> None:
    srv = serve(tls_app, tls_certfile=certs.both, http_timeout_request_header=0.5)
    with connect(srv.port, timeout=10) as sock:
        started = time.monotonic()
        assert sock.recv(4096) == b""  # closed by the server, nothing sent
        assert time.monotonic() - started < 5
    assert get_json(srv, certs.client_context())["scheme"] == "https"


# -- other clients ----------------------------------------------------------------------


def test_curl_with_cacert(serve, certs: Certs) -> None:
    curl = need_command("curl")
    srv = serve(tls_app, tls_certfile=certs.both)
    url = f"https://localhost:{srv.port}/"
    result = subprocess.run([curl, "-sS", "--cacert", certs.ca_pem, url], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["scheme"] == "https"
    # Without the CA curl refuses the certificate.
    refused = subprocess.run([curl, "-sS", url], capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0


def test_curl_with_client_certificate(serve, certs: Certs) -> None:
    curl = need_command("curl")
    srv = serve(tls_app, tls_certfile=certs.both, tls_ca_certs=certs.ca_pem, tls_cert_reqs="required")
    url = f"https://localhost:{srv.port}/"
    result = subprocess.run([curl, "-sS", "--cacert", certs.ca_pem, "--cert", certs.client_both, url],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tls"]["client_cert_name"].startswith("CN=alice")


def test_wss_with_websockets_client(serve, certs: Certs) -> None:
    from websockets.sync.client import connect

    srv = serve(tls_app, tls_certfile=certs.both)
    with connect(f"wss://localhost:{srv.port}/", ssl=certs.client_context(), open_timeout=10) as ws:
        body = json.loads(ws.recv(timeout=10))
    assert body["scheme"] == "wss"
    assert body["tls"]["tls_version"] == 0x0304


# -- the hook: a third-party plugin's context --------------------------------------------


class OwnContextPlugin:
    """A test plugin that supplies its own context instead of [tls]."""

    name = "own-context"

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.calls = 0

    @hookimpl(tryfirst=True)
    def pounce_tls_context(self, config: Any) -> ssl.SSLContext:
        self.calls += 1
        return self.context


def test_third_party_plugin_context_is_used(serve, certs: Certs) -> None:
    other_ca = trustme.CA()
    own = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    other_ca.issue_cert("localhost", "127.0.0.1").configure_cert(own)
    plugin = OwnContextPlugin(own)
    # [tls] is configured too: the plugin's answer wins (firstresult).
    srv = serve(tls_app, plugins=[plugin], tls_certfile=certs.both)
    assert plugin.calls == 1
    assert srv.url.startswith("https://")
    trusting_other = ssl.create_default_context()
    other_ca.configure_trust(trusting_other)
    body = get_json(srv, trusting_other)
    assert body["scheme"] == "https"
    assert body["tls"]["server_cert"] is None  # not registered by that plugin
    with pytest.raises(ssl.SSLCertVerificationError):
        raw_request(srv.port, certs.client_context())


def test_third_party_context_without_tls_section(serve) -> None:
    ca = trustme.CA()
    own = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(own)
    srv = serve(tls_app, plugins=[OwnContextPlugin(own)])
    context = ssl.create_default_context()
    ca.configure_trust(context)
    assert get_json(srv, context)["scheme"] == "https"


# -- certificate reload -------------------------------------------------------------------


def _presented_cert(port: int, context: ssl.SSLContext) -> bytes:
    with connect(port, timeout=10) as sock, context.wrap_socket(sock, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


@pytest.mark.slow
def test_certificate_reload_when_files_change(serve, certs: Certs) -> None:
    cert, key = certs.write("live.crt", certs.server.cert_chain_pems[0].bytes()), \
        certs.write("live.key", certs.server.private_key_pem.bytes())
    srv = serve(tls_app, tls_certfile=cert, tls_keyfile=key, tls_reload_interval=0.2)
    context = certs.client_context()
    first = _presented_cert(srv.port, context)
    assert first == ssl.PEM_cert_to_DER_cert(certs.server.cert_chain_pems[0].bytes().decode())

    renewed = certs.ca.issue_cert("localhost", "127.0.0.1")
    Path(key).write_bytes(renewed.private_key_pem.bytes())
    Path(cert).write_bytes(renewed.cert_chain_pems[0].bytes())
    wanted = ssl.PEM_cert_to_DER_cert(renewed.cert_chain_pems[0].bytes().decode())
    wait_for(lambda: _presented_cert(srv.port, context) == wanted, interval=0.1, what="the renewed certificate")
    tls = get_json(srv, context)["tls"]
    assert tls["server_cert"] == renewed.cert_chain_pems[0].bytes().decode()
    alpn_context = certs.client_context()
    alpn_context.set_alpn_protocols(["h2", "http/1.1"])
    assert _alpn_chosen(srv.port, alpn_context) == "h2"  # the new context keeps the settings

    # A broken replacement (key of another certificate) keeps the last good one.
    stranger = trustme.CA().issue_cert("localhost")
    with capture_logs(logging.WARNING, ["pounce.tls"]) as logs:
        Path(key).write_bytes(stranger.private_key_pem.bytes())

        def failed_and_kept() -> bool:
            # The files are checked during a handshake: each poll makes one.
            assert _presented_cert(srv.port, context) == wanted
            return "keeping the previous certificate" in logs.text

        wait_for(failed_and_kept, interval=0.1, what="the failed reload to be logged")
    assert _presented_cert(srv.port, context) == wanted


def test_reload_without_file_checks(serve, certs: Certs) -> None:
    cert = certs.write("fixed.pem", certs.server.private_key_and_cert_chain_pem.bytes())
    srv = serve(tls_app, tls_certfile=cert, tls_reload_interval=0)
    context = certs.client_context()
    before = _presented_cert(srv.port, context)
    renewed = certs.ca.issue_cert("localhost", "127.0.0.1")
    Path(cert).write_bytes(renewed.private_key_and_cert_chain_pem.bytes())
    holds(lambda: _presented_cert(srv.port, context) == before, 0.3, "the old certificate (no file checks)")


def test_pounce_process_https_banner(pounce_process, certs: Certs) -> None:
    proc = pounce_process("testapps:echo_scope", "--port", "0", "--ssl-certfile", certs.cert,
                          "--ssl-keyfile", certs.key)
    assert proc.url.startswith("https://127.0.0.1:")
    assert "TLS: " in proc.output()
    response = httpx.get(proc.url + "/x", verify=certs.client_context(), timeout=10)
    assert response.json()["scheme"] == "https"


def test_tls_works_across_asyncio_loops(certs: Certs) -> None:
    """The shared context serves two servers in one process at once (threads)."""
    with ServerThread(tls_app, tls_certfile=certs.both) as a, ServerThread(tls_app, tls_certfile=certs.both) as b:
        context = certs.client_context()
        assert get_json(a, context)["scheme"] == get_json(b, context)["scheme"] == "https"


# -- worker modes ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_every_worker_mode(pounce_process, certs: Certs, mode: str) -> None:
    """Threads share the main process's context; each process builds its own
    from the config. Every worker answers over TLS with the tls extension."""
    proc = pounce_process("tests.integration.test_tls:tls_app", "--app-dir", str(ROOT), "--port", "0", "--workers", "2",
                          "--worker-mode", mode, "--ssl-certfile", certs.cert, "--ssl-keyfile", certs.key,
                          "--ssl-ca-certs", certs.ca_pem, "--ssl-cert-reqs", "optional")
    assert proc.url.startswith("https://")
    context = certs.client_context(client_cert=certs.client_both)
    for _ in range(8):
        # A new connection each time, so both workers get some.
        with httpx.Client(verify=context, timeout=10) as client:
            response = client.get(proc.url + "/w")
        assert response.status_code == 200
        body = response.json()
        assert body["scheme"] == "https"
        assert body["tls"]["client_cert_name"].startswith("CN=alice")
        assert body["tls"]["server_cert"] == certs.server.cert_chain_pems[0].bytes().decode()
    alpn, response = raw_request(proc.port, context)
    assert response.startswith(b"HTTP/1.1 200")
    assert "Traceback" not in proc.output()


def test_reload_keeps_client_certificate_checks(serve, certs: Certs) -> None:
    live = certs.write("live-both.pem", certs.server.private_key_and_cert_chain_pem.bytes())
    srv = serve(tls_app, tls_certfile=live, tls_ca_certs=certs.ca_pem, tls_cert_reqs="required",
                tls_reload_interval=0.1)
    renewed = certs.ca.issue_cert("localhost", "127.0.0.1")
    Path(live).write_bytes(renewed.private_key_and_cert_chain_pem.bytes())
    wanted = ssl.PEM_cert_to_DER_cert(renewed.cert_chain_pems[0].bytes().decode())
    with_cert = certs.client_context(client_cert=certs.client_both)
    wait_for(lambda: _presented_cert(srv.port, with_cert) == wanted, interval=0.1, what="the renewed certificate")
    assert get_json(srv, with_cert)["tls"]["client_cert_name"].startswith("CN=alice")
    try:
        _, response = raw_request(srv.port, certs.client_context())
    except (ssl.SSLError, ConnectionError):
        response = b""
    assert response == b""


@pytest.mark.slow
def test_sighup_reloads_certificates(pounce_process, certs: Certs) -> None:
    """With file checks off, SIGHUP reloads; the server keeps running."""
    live = certs.write("hup.pem", certs.server.private_key_and_cert_chain_pem.bytes())
    proc = pounce_process("testapps:hello", "--port", "0", "--ssl-certfile", live,
                          "--ssl-reload-interval", "0")
    port = proc.port
    context = certs.client_context()
    before = _presented_cert(port, context)
    renewed = certs.ca.issue_cert("localhost", "127.0.0.1")
    Path(live).write_bytes(renewed.private_key_and_cert_chain_pem.bytes())
    holds(lambda: _presented_cert(port, context) == before, 0.2, "the old certificate (no file checks)")
    proc.signal(signal.SIGHUP)
    wanted = ssl.PEM_cert_to_DER_cert(renewed.cert_chain_pems[0].bytes().decode())
    wait_for(lambda: _presented_cert(port, context) == wanted, interval=0.1, what="the certificate after SIGHUP")
    assert proc.proc is not None and proc.proc.poll() is None
    assert "reloading TLS certificates" in proc.output()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_sighup_with_supervisor_renews_every_worker(pounce_process, certs: Certs, mode: str) -> None:
    """The supervisor's SIGHUP (rolling restart) brings new certificates to
    every worker: processes rebuild their context, threads check the files."""
    live = certs.write("sup.pem", certs.server.private_key_and_cert_chain_pem.bytes())
    proc = pounce_process("testapps:hello", "--port", "0", "--workers", "2", "--worker-mode", mode,
                          "--ssl-certfile", live, "--ssl-reload-interval", "0")
    port = proc.port
    context = certs.client_context()
    renewed = certs.ca.issue_cert("localhost", "127.0.0.1")
    Path(live).write_bytes(renewed.private_key_and_cert_chain_pem.bytes())
    proc.signal(signal.SIGHUP)
    wanted = ssl.PEM_cert_to_DER_cert(renewed.cert_chain_pems[0].bytes().decode())
    # Six new connections in a row, so that every worker has answered one.
    wait_for(lambda: all(_presented_cert(port, context) == wanted for _ in range(6)), 20, interval=0.2,
             what="every worker to present the renewed certificate")
    assert proc.proc is not None and proc.proc.poll() is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_permission_denied(tmp_path: Path, certs: Certs) -> None:
    locked = Path(certs.write("locked.pem", certs.server.private_key_and_cert_chain_pem.bytes()))
    locked.chmod(0)
    result = run_pounce(["testapps:hello", "--port", "0", "--ssl-certfile", str(locked)],
                        cwd=tmp_path, env=subprocess_env())
    assert result.returncode == 2
    assert "(permission denied)" in result.stderr


def test_thread_workers_share_one_context(serve, certs: Certs) -> None:
    """The hook runs once in the main process; thread workers use its answer."""
    own = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certs.server.configure_cert(own)
    plugin = OwnContextPlugin(own)
    srv = serve(tls_app, plugins=[plugin], workers=2, worker_mode="thread")
    for _ in range(6):
        with httpx.Client(verify=certs.client_context(), timeout=10) as client:
            assert client.get(srv.url).json()["scheme"] == "https"
    assert plugin.calls == 1
