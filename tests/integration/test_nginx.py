"""pounce behind a real nginx (Debian's package, see scripts/system-deps.sh),
over a unix socket and over TCP: client address, scheme, SSE streaming,
WebSocket and keep-alive. nginx runs deploy/nginx/pounce.conf, the file
docs/deployment/nginx.md shows, with only its addresses and certificate paths
replaced."""

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

RECIPE = ROOT / "deploy" / "nginx" / "pounce.conf"

# The recipe goes inside this http {} block; the rest only keeps nginx's
# files in the test's folder.
MAIN = """
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
  include {recipe};
}}
"""


def replace_once(text: str, old: str, new: str) -> str:
    """Each replacement must find its line exactly once: when the recipe
    changes, this test says which line it no longer finds."""
    assert text.count(old) == 1, f"{RECIPE.name}: expected one {old!r}"
    return text.replace(old, new)


def recipe_for(upstream: str, *, http_port: int, https_port: int, prefix: Path) -> str:
    """deploy/nginx/pounce.conf with only its addresses and certificate paths
    replaced; ``upstream`` is ``unix:PATH`` or ``HOST:PORT``."""
    text = RECIPE.read_text()
    if upstream.startswith("unix:"):
        text = replace_once(text, "server unix:/run/pounce/pounce.sock;", f"server {upstream};")
    else:
        text = replace_once(text, "server unix:/run/pounce/pounce.sock;", "# (unix socket not used here)")
        text = replace_once(text, "# server 127.0.0.1:8000;", f"server {upstream};")
    text = replace_once(text, "listen 80;", f"listen 127.0.0.1:{http_port};")
    text = replace_once(text, "listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
    text = replace_once(text, "/etc/ssl/certs/example.com.pem", f"{prefix}/cert.pem")
    return replace_once(text, "/etc/ssl/private/example.com.key", f"{prefix}/key.pem")


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


class Nginx:
    """One nginx running the recipe towards one pounce upstream."""

    def __init__(self, binary: str, prefix: Path, upstream: str) -> None:
        prefix.mkdir(parents=True, exist_ok=True)
        self.http_port, self.https_port = free_port(), free_port()
        recipe = prefix / "pounce.conf"
        recipe.write_text(recipe_for(upstream, http_port=self.http_port, https_port=self.https_port,
                                     prefix=prefix.parent))
        main = prefix / "nginx.conf"
        main.write_text(MAIN.format(user="user root;" if os.geteuid() == 0 else "", prefix=prefix,
                                    recipe=recipe))
        self.error_log = prefix / "error.log"
        self.proc = subprocess.Popen(
            [binary, "-p", str(prefix), "-c", str(main), "-e", str(self.error_log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self.http = f"http://127.0.0.1:{self.http_port}"
        self.https = f"https://127.0.0.1:{self.https_port}"

    def log(self) -> str:
        return self.error_log.read_text() if self.error_log.exists() else ""

    def wait_listening(self) -> None:
        def listening() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"nginx exited with {self.proc.returncode}: {self.log()}")
            try:
                connect(self.http_port, timeout=0.5).close()
            except OSError:
                return False
            return True

        wait_for(listening, 15, interval=0.05, what=lambda: f"nginx to listen: {self.log()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def stack(serve: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Three nginx instances, each running the recipe: to a pounce on a unix
    socket, to one over TCP, and to one over TCP that trusts no proxy (so the
    app sees nginx's own upstream connection, which keep-alive must reuse)."""
    ensure_nginx()
    binary = need_command("nginx")
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

    upstreams = {"unix": f"unix:{sock_path}", "tcp": f"127.0.0.1:{tcp.port}", "ka": f"127.0.0.1:{plain.port}"}
    running: dict[str, Nginx] = {}
    try:
        for route, upstream in upstreams.items():
            running[route] = Nginx(binary, tmp_path / f"nginx-{route}", upstream)
        for nginx in running.values():
            nginx.wait_listening()
        yield {"app": app, "nginx": running, "ca": str(ca_path), "pounce_tcp": tcp}
    finally:
        for nginx in running.values():
            nginx.stop()


def raw_get(port: int, path: str) -> dict[str, Any]:
    """GET through nginx on a raw socket (our own Host header); the JSON facts."""
    head, body = fetch(port, path, host="app.example")
    assert head.startswith(b"HTTP/1.1 200"), head + body[:300]
    return json.loads(body)


@pytest.mark.parametrize("route", ["unix", "tcp"])
def test_client_address_and_host(stack: dict[str, Any], route: str) -> None:
    facts = raw_get(stack["nginx"][route].http_port, f"/{route}/whoami")
    # Over a unix socket pounce sees no peer address at all, over TCP it
    # sees nginx's ephemeral port: the 127.0.0.1 with port 0 can only have
    # come from X-Forwarded-For.
    assert facts["client"] == ["127.0.0.1", 0]
    assert facts["host"] == ["app.example"]
    assert facts["path"] == f"/{route}/whoami"


@pytest.mark.parametrize("route", ["unix", "tcp"])
def test_scheme(stack: dict[str, Any], route: str) -> None:
    nginx = stack["nginx"][route]
    assert httpx.get(f"{nginx.http}/{route}/x").json()["scheme"] == "http"
    context = ssl.create_default_context(cafile=stack["ca"])
    facts = httpx.get(f"{nginx.https}/{route}/x", verify=context).json()
    assert facts["scheme"] == "https"


@pytest.mark.parametrize("route", ["unix", "tcp"])
def test_sse_streams_through_nginx(stack: dict[str, Any], route: str) -> None:
    app: App = stack["app"]
    app.release.clear()
    url = f"{stack['nginx'][route].http}/{route}/sse"
    with httpx.Client() as client, client.stream("GET", url) as response:
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
    ports = {raw_get(stack["nginx"]["ka"].http_port, "/ka/x")["client"][1] for _ in range(5)}
    assert len(ports) == 1 and next(iter(ports)) > 0


@pytest.mark.parametrize("route", ["unix", "tcp"])
def test_client_keep_alive_through_nginx(stack: dict[str, Any], route: str) -> None:
    with httpx.Client(base_url=stack["nginx"][route].http) as client:
        results = [client.get(f"/{route}/k{i}").json() for i in range(4)]
    assert [r["path"] for r in results] == [f"/{route}/k{i}" for i in range(4)]


@pytest.mark.parametrize("route", ["unix", "tcp"])
def test_websocket_through_nginx(stack: dict[str, Any], route: str) -> None:
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{stack['nginx'][route].http_port}/{route}/ws", open_timeout=10) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "ws:hello"
