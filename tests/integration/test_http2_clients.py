"""HTTP/2 with real clients: httpx (h2c prior knowledge and TLS with ALPN),
curl (--http2-prior-knowledge, --http2 upgrade, --http2 over TLS), nghttp,
h2load, a Starlette app; and ``--no-http2``."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
from pathlib import Path
from typing import Any

import h2apps
import httpx
import pytest
import trustme

from pounce.testing import ServerThread
from tests.helpers import need_command


class Certs:
    def __init__(self, root: Path) -> None:
        ca = trustme.CA()
        server = ca.issue_cert("localhost", "127.0.0.1")
        self.ca_pem = root / "ca.pem"
        self.ca_pem.write_bytes(ca.cert_pem.bytes())
        self.both = root / "server.pem"
        self.both.write_bytes(server.private_key_and_cert_chain_pem.bytes())

    def context(self, alpn: list[str] | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_pem))
        if alpn:
            context.set_alpn_protocols(alpn)
        return context


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return Certs(tmp_path)


@pytest.fixture
def h2c(serve: Any) -> ServerThread:
    return serve(h2apps.app)


def h2_client(**kw: Any) -> httpx.Client:
    return httpx.Client(http1=False, http2=True, timeout=10, **kw)


# -- httpx ------------------------------------------------------------------------------


def test_httpx_prior_knowledge_gets_the_http2_scope(h2c: ServerThread) -> None:
    with h2_client() as client:
        response = client.get(h2c.url + "/echo?a=1", headers={"x-one": "1"})
    assert response.http_version == "HTTP/2"
    info = response.json()
    assert info["http_version"] == "2" and info["method"] == "GET" and info["query"] == "a=1"
    assert info["scheme"] == "http"
    headers = dict(info["headers"])
    assert headers["host"] == h2c.url.split("//")[1] and headers["x-one"] == "1"
    assert not [n for n, _ in info["headers"] if n.startswith(":")]
    assert response.headers["server"] == "pounce" and "date" in response.headers
    assert response.headers["content-length"] == str(len(response.content))


def test_proxy_headers_from_a_trusted_peer(h2c: ServerThread) -> None:
    with h2_client() as client:
        info = client.get(h2c.url + "/echo", headers={"x-forwarded-for": "203.0.113.7",
                                                     "x-forwarded-proto": "https"}).json()
    assert info["client"][0] == "203.0.113.7" and info["scheme"] == "https"


def test_request_and_response_bodies_larger_than_the_windows(h2c: ServerThread) -> None:
    body = bytes(range(256)) * 8192  # 2 MiB: thirty-two initial windows
    with h2_client() as client:
        response = client.post(h2c.url + "/echo", content=body)
        assert response.json()["body_size"] == len(body)
        big = client.get(h2c.url + "/big?3000000")
    assert big.status_code == 200 and len(big.content) == 3000000 and big.content == b"x" * 3000000


def test_many_concurrent_streams_share_one_connection(h2c: ServerThread) -> None:
    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(http1=False, http2=True, timeout=10) as client:
            return await asyncio.gather(*(client.get(f"{h2c.url}/echo?{i}") for i in range(60)))

    responses = asyncio.run(run())
    assert [r.json()["query"] for r in responses] == [str(i) for i in range(60)]
    assert {r.http_version for r in responses} == {"HTTP/2"}


def test_streamed_response_hop_by_hop_headers_and_a_failing_app(h2c: ServerThread, errors: Any) -> None:
    with h2_client() as client:
        streamed = client.get(h2c.url + "/stream")
        assert streamed.text == "".join(f"part {i}\n" for i in range(5))
        assert "content-length" not in streamed.headers
        hop = client.get(h2c.url + "/hop")
        assert hop.text == "hop" and hop.headers["x-ok"] == "1"
        assert "connection" not in hop.headers and "transfer-encoding" not in hop.headers
        failed = client.get(h2c.url + "/fail")
        assert failed.status_code == 500
        head = client.head(h2c.url + "/echo")
        assert head.status_code == 200 and head.content == b""
        # The connection is still good after all that.
        assert client.get(h2c.url + "/echo").json()["http_version"] == "2"
    assert any("error in ASGI app" in m for m in errors.messages())


def test_httpx_over_tls_negotiates_h2_and_http11_clients_still_get_http11(serve: Any, certs: Certs) -> None:
    srv = serve(h2apps.app, tls_certfile=str(certs.both))
    with httpx.Client(http2=True, verify=certs.context(), timeout=10) as client:
        response = client.get(srv.url + "/echo")
    assert response.http_version == "HTTP/2"
    assert response.json()["scheme"] == "https" and "tls" in response.json()["extensions"]
    with httpx.Client(verify=certs.context(), timeout=10) as client:
        response = client.get(srv.url + "/echo")
    assert response.http_version == "HTTP/1.1" and response.json()["http_version"] == "1.1"


def test_no_http2_turns_every_way_off(serve: Any, certs: Certs) -> None:
    srv = serve(h2apps.app, tls_certfile=str(certs.both), http2_enabled=False)
    with httpx.Client(http2=True, verify=certs.context(), timeout=10) as client:
        assert client.get(srv.url + "/echo").http_version == "HTTP/1.1"
    plain = serve(h2apps.app, http2_enabled=False)
    curl = need_command("curl")
    out = subprocess.run([curl, "-s", "--http2", plain.url + "/echo"], capture_output=True, timeout=20)
    assert json.loads(out.stdout)["http_version"] == "1.1"  # the Upgrade: h2c is ignored
    with h2_client() as client, pytest.raises(httpx.HTTPError):
        client.get(plain.url + "/echo")  # the preface is no HTTP/1.1 request


# -- curl, nghttp, h2load -------------------------------------------------------------------


def test_curl_prior_knowledge_upgrade_and_tls(serve: Any, certs: Certs) -> None:
    curl = need_command("curl")
    srv = serve(h2apps.app)
    out = subprocess.run([curl, "-s", "--http2-prior-knowledge", "-w", "%{http_version}", srv.url + "/echo"],
                         capture_output=True, text=True, timeout=20)
    assert out.stdout.endswith("}2") and json.loads(out.stdout[:-1])["http_version"] == "2"
    out = subprocess.run([curl, "-sv", "--http2", srv.url + "/echo?up"], capture_output=True, text=True,
                         timeout=20)
    assert "101 Switching Protocols" in out.stderr and "< HTTP/2 200" in out.stderr
    info = json.loads(out.stdout)
    assert info["http_version"] == "2" and info["query"] == "up"
    assert "upgrade" not in dict(info["headers"]) and "http2-settings" not in dict(info["headers"])
    tls = serve(h2apps.app, tls_certfile=str(certs.both))
    out = subprocess.run([curl, "-sv", "--http2", "--cacert", str(certs.ca_pem), tls.url + "/trailers"],
                         capture_output=True, text=True, timeout=20)
    assert "ALPN: server accepted h2" in out.stderr or "ALPN, server accepted to use h2" in out.stderr
    assert "< HTTP/2 200" in out.stderr and out.stdout == "with trailers"


def test_curl_upgrade_with_a_body_stays_on_http11(h2c: ServerThread) -> None:
    curl = need_command("curl")
    out = subprocess.run([curl, "-sv", "--http2", "--data-binary", "abc", h2c.url + "/echo"],
                         capture_output=True, text=True, timeout=20)
    info = json.loads(out.stdout)
    assert info["http_version"] == "1.1" and info["body_size"] == 3


def test_nghttp_sees_settings_and_the_response(h2c: ServerThread) -> None:
    nghttp = need_command("nghttp")
    out = subprocess.run([nghttp, "-nv", h2c.url + "/echo"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    assert "SETTINGS_MAX_CONCURRENT_STREAMS(0x03):100" in out.stdout
    assert "SETTINGS_ENABLE_CONNECT_PROTOCOL(0x08):1" in out.stdout
    assert ":status: 200" in out.stdout
    # Uploads with nghttp's own flow control.
    out = subprocess.run([nghttp, "-d", "-", h2c.url + "/echo"], input=b"z" * 300000, capture_output=True,
                         timeout=20)
    assert json.loads(out.stdout)["body_size"] == 300000


@pytest.mark.slow
def test_h2load_completes_every_request(h2c: ServerThread, certs: Certs, serve: Any) -> None:
    h2load = need_command("h2load")
    out = subprocess.run([h2load, "-n", "400", "-c", "4", "-m", "10", h2c.url + "/echo"],
                         capture_output=True, text=True, timeout=60)
    assert "400 succeeded, 0 failed, 0 errored" in out.stdout, out.stdout
    tls = serve(h2apps.app, tls_certfile=str(certs.both))
    out = subprocess.run([h2load, "-n", "200", "-c", "2", "-m", "10", tls.url + "/echo"],
                         capture_output=True, text=True, timeout=60)
    assert "200 succeeded, 0 failed, 0 errored" in out.stdout and "h2" in out.stdout, out.stdout


# -- frameworks and the access log -------------------------------------------------------------


def test_a_starlette_app_works_unchanged(serve: Any, tmp_path: Path) -> None:
    starlette = pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, StreamingResponse
    from starlette.routing import Route

    (tmp_path / "file.txt").write_bytes(b"file body " * 10000)

    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"version": request.scope["http_version"], "cookies": request.cookies,
                             "host": request.headers["host"]})

    async def upload(request: Request) -> JSONResponse:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return JSONResponse({"size": size})

    async def numbers(request: Request) -> StreamingResponse:
        async def gen() -> Any:
            for i in range(100):
                yield f"{i}\n"
        return StreamingResponse(gen(), media_type="text/plain")

    async def file(request: Request) -> FileResponse:
        return FileResponse(tmp_path / "file.txt")

    app = Starlette(routes=[Route("/", hello), Route("/upload", upload, methods=["POST"]),
                            Route("/numbers", numbers), Route("/file", file)])
    srv = serve(app)
    assert starlette.__version__
    with h2_client() as client:
        client.cookies.set("session", "abc")
        client.cookies.set("theme", "dark")
        info = client.get(srv.url + "/").json()
        assert info["version"] == "2" and info["cookies"] == {"session": "abc", "theme": "dark"}
        assert client.post(srv.url + "/upload", content=b"u" * 500000).json() == {"size": 500000}
        assert client.get(srv.url + "/numbers").text == "".join(f"{i}\n" for i in range(100))
        assert client.get(srv.url + "/file").content == b"file body " * 10000


def test_access_log_names_http_2_0(pounce_process: Any) -> None:
    proc = pounce_process("h2apps:app", "--port", "0")
    with h2_client() as client:
        assert client.get(proc.url + "/echo").status_code == 200
    proc.stop()
    assert '"GET /echo HTTP/2.0" 200' in proc.output(), proc.output()


def test_pathsend_files_go_out_in_flow_controlled_frames(serve: Any, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    (tmp_path / "big.bin").write_bytes(data)

    async def files(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        assert "http.response.pathsend" in scope["extensions"]
        message: dict[str, Any] = {"type": "http.response.pathsend", "path": str(tmp_path / "big.bin")}
        if scope["path"] == "/range":
            message.update(offset=1000, count=5000)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send(message)

    srv = serve(files)
    with h2_client() as client:
        whole = client.get(srv.url + "/")
        assert whole.http_version == "HTTP/2" and whole.content == data
        assert whole.headers["content-length"] == str(len(data))
        part = client.get(srv.url + "/range")
        assert part.content == data[1000:6000]
        assert client.head(srv.url + "/").content == b""
