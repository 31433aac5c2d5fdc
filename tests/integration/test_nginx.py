"""pounce behind a real nginx (Debian's package, see scripts/system-deps.sh),
over a unix socket and over TCP: client address, scheme, SSE streaming and
keep-alive. The nginx configuration is the recipe in README "Behind nginx"."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pounce.testing import wait_for
from tests.helpers import ROOT, connect, fetch, free_port, need_command

RECIPE = """
    proxy_http_version 1.1;
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $connection_upgrade;
    proxy_buffering off;
"""

CONFIG = """
{user}
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 128; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;

  map $http_upgrade $connection_upgrade {{
    default upgrade;
    ''      '';
  }}
  upstream pounce_unix {{
    server unix:{sock};
    keepalive 8;
  }}
  upstream pounce_tcp {{
    server 127.0.0.1:{port};
    keepalive 8;
  }}
  upstream pounce_plain {{
    server 127.0.0.1:{plain_port};
    keepalive 8;
  }}
  server {{
    listen 127.0.0.1:{http_port};
    listen 127.0.0.1:{https_port} ssl;
    ssl_certificate {prefix}/cert.pem;
    ssl_certificate_key {prefix}/key.pem;
    location /unix/ {{
      proxy_pass http://pounce_unix;
      {recipe}
    }}
    location /tcp/ {{
      proxy_pass http://pounce_tcp;
      {recipe}
    }}
    location /ka/ {{
      # The recipe again, to a pounce that trusts no proxy: the app sees
      # nginx's own upstream connection, which keep-alive must reuse.
      proxy_pass http://pounce_plain;
      {recipe}
    }}
  }}
}}
"""


class App:
    """``/*/sse`` streams two events, the second only after the test saw the
    first; anything else answers the scope facts as JSON."""

    def __init__(self) -> None:
        self.release = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            message = await receive()
            await send({"type": "websocket.send", "text": f"{scope['scheme']}:{message.get('text')}"})
            await send({"type": "websocket.close"})
            return
        if scope["type"] != "http":
            return
        if scope["path"].endswith("/sse"):
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
            await send({"type": "http.response.body", "body": b"data: one\n\n", "more_body": True})
            for _ in range(200):
                if self.release.is_set():
                    break
                await asyncio.sleep(0.025)
            await send({"type": "http.response.body", "body": b"data: two\n\n"})
            return
        host = [v.decode() for n, v in scope["headers"] if n == b"host"]
        payload = json.dumps({"client": scope["client"], "scheme": scope["scheme"], "host": host,
                              "path": scope["path"]}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})


def ensure_nginx() -> None:
    """The test setup installs Debian's nginx when it is missing (the same
    script ``make test`` runs first); without root it cannot, and the tests
    skip with the reason."""
    if shutil.which("nginx") is None:
        subprocess.run(["bash", str(ROOT / "scripts" / "system-deps.sh")], timeout=100,
                       stdin=subprocess.DEVNULL, capture_output=True, check=False)


@pytest.fixture
def stack(serve: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    ensure_nginx()
    nginx = need_command("nginx")
    import trustme

    app = App()
    sock_path = str(tmp_path / "pounce.sock")
    allowed = ["127.0.0.1", "unix"]
    serve(app, lifespan="off", uds=sock_path, forwarded_allow_ips=allowed)
    tcp = serve(app, lifespan="off", forwarded_allow_ips=allowed)
    plain = serve(app, lifespan="off", proxy_headers=False)

    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))

    http_port, https_port = free_port(), free_port()
    config = CONFIG.format(
        user="user root;" if os.geteuid() == 0 else "",
        prefix=tmp_path, sock=sock_path, port=tcp.port, plain_port=plain.port,
        http_port=http_port, https_port=https_port,
        recipe=RECIPE,
    )
    (tmp_path / "nginx.conf").write_text(config)
    proc = subprocess.Popen(
        [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", str(tmp_path / "error.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    def error_log() -> str:
        log = tmp_path / "error.log"
        return log.read_text() if log.exists() else ""

    def listening() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"nginx exited with {proc.returncode}: {error_log()}")
        try:
            connect(http_port, timeout=0.5).close()
        except OSError:
            return False
        return True

    try:
        wait_for(listening, 15, interval=0.05, what=lambda: f"nginx to listen: {error_log()}")
        yield {"app": app, "http": f"http://127.0.0.1:{http_port}", "https": f"https://127.0.0.1:{https_port}",
               "port": http_port, "ca": str(ca_path), "pounce_tcp": tcp}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def raw_get(port: int, path: str) -> dict[str, Any]:
    """GET through nginx on a raw socket (our own Host header); the JSON facts."""
    head, body = fetch(port, path, host="app.example")
    assert head.startswith(b"HTTP/1.1 200"), head + body[:300]
    return json.loads(body)


@pytest.mark.parametrize("route", ["unix", "tcp"])
def test_client_address_and_host(stack: dict[str, Any], route: str) -> None:
    facts = raw_get(stack["port"], f"/{route}/whoami")
    # Over a unix socket pounce sees no peer address at all, over TCP it
    # sees nginx's ephemeral port: the 127.0.0.1 with port 0 can only have
    # come from X-Forwarded-For.
    assert facts["client"] == ["127.0.0.1", 0]
    assert facts["host"] == ["app.example"]
    assert facts["path"] == f"/{route}/whoami"


@pytest.mark.parametrize("route", ["unix", "tcp"])
def test_scheme(stack: dict[str, Any], route: str) -> None:
    assert httpx.get(f"{stack['http']}/{route}/x").json()["scheme"] == "http"
    context = ssl.create_default_context(cafile=stack["ca"])
    facts = httpx.get(f"{stack['https']}/{route}/x", verify=context).json()
    assert facts["scheme"] == "https"


@pytest.mark.parametrize("route", ["unix", "tcp"])
def test_sse_streams_through_nginx(stack: dict[str, Any], route: str) -> None:
    app: App = stack["app"]
    app.release.clear()
    with httpx.Client() as client, client.stream("GET", f"{stack['http']}/{route}/sse") as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        started = time.monotonic()
        assert next(lines) == "data: one"
        assert time.monotonic() - started < 4  # not held back by proxy buffering
        app.release.set()
        rest = [line for line in lines if line]
    assert rest == ["data: two"]


def test_keep_alive_to_upstream(stack: dict[str, Any]) -> None:
    """Five separate client connections to nginx travel over one kept-alive
    nginx→pounce connection (the same upstream source port each time)."""
    ports = {raw_get(stack["port"], "/ka/x")["client"][1] for _ in range(5)}
    assert len(ports) == 1 and next(iter(ports)) > 0


def test_client_keep_alive_through_nginx(stack: dict[str, Any]) -> None:
    with httpx.Client(base_url=stack["http"]) as client:
        results = [client.get(f"/{route}/k").json() for route in ("unix", "tcp", "unix", "tcp")]
    assert [r["path"] for r in results] == ["/unix/k", "/tcp/k", "/unix/k", "/tcp/k"]


@pytest.mark.parametrize("route", ["unix", "tcp"])
def test_websocket_through_nginx(stack: dict[str, Any], route: str) -> None:
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{stack['port']}/{route}/ws", open_timeout=10) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "ws:hello"
