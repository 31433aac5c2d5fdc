"""The Server lifecycle, shutdown semantics, binding and the ASGI http scope."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

import pounce
import testapps
from pounce import LifecycleCollector, Server, ServerConfig
from pounce.testing import ServerThread, wait_for
from testapps import echo_scope, hello, slow


def test_full_lifecycle_sequence(serve) -> None:
    srv = serve(echo_scope)
    assert httpx.get(srv.url).status_code == 200
    srv.stop()
    assert srv.collector.names() == [
        "ConfigLoaded",
        "WorkerModeDetected",
        "SocketsBound",
        "LifespanStarted",
        "ServingStarted",
        "ShutdownStarted",
        "LifespanStopped",
        "ServerStopped",
    ]
    started = srv.collector.of_type(pounce.core.lifecycle.LifespanStarted)[0]
    assert started.enabled is True


def test_shutdown_before_run_returns_at_once() -> None:
    collector = LifecycleCollector()
    config = ServerConfig.load(None, env={}, discover=False, port=0)
    server = Server(config, hello, lifecycle_collector=collector)
    server.shutdown()
    server.shutdown()  # idempotent
    began = time.monotonic()
    server.run()
    assert time.monotonic() - began < 1
    assert collector.names() == ["ShutdownStarted", "ServerStopped"]


def test_shutdown_from_another_thread_is_idempotent() -> None:
    srv = ServerThread(hello).start()
    threads = [threading.Thread(target=srv.server.shutdown) for _ in range(5)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        srv._thread.join(10)  # type: ignore[union-attr]
        assert not srv._thread.is_alive()  # type: ignore[union-attr]
    finally:
        srv.stop()  # already stopped when the test passes
    assert srv.collector.names().count("ShutdownStarted") == 1


def test_scope_fields(serve) -> None:
    srv = serve(echo_scope, root_path="/api")
    response = httpx.get(srv.url + "/a%20b/c?x=1&y=%20", headers={"X-Test": "yes"})
    scope = response.json()
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/a b/c"
    assert scope["raw_path"] == "/api/a%20b/c"
    assert scope["query_string"] == "x=1&y=%20"
    assert ["x-test", "yes"] in scope["headers"]
    assert scope["server"] == ["127.0.0.1", srv.port]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["state"] == {"started": "yes"}


def test_lifespan_state_is_copied_per_request(serve) -> None:
    srv = serve(echo_scope)
    first = httpx.get(srv.url).json()
    second = httpx.get(srv.url).json()
    assert first["state"] == second["state"] == {"started": "yes"}


def test_keep_alive_reuses_connection(serve) -> None:
    srv = serve(hello)
    with httpx.Client() as client:
        ports = set()
        for _ in range(5):
            r = client.get(srv.url)
            assert r.text == "Hello, world!"
            ports.add(r.extensions["network_stream"].get_extra_info("client_addr")[1])
    assert len(ports) == 1


@pytest.mark.slow
def test_streaming_response_and_post_echo(serve) -> None:
    from pounce.demo import app

    srv = serve(app)
    with httpx.stream("GET", srv.url + "/stream") as r:
        assert r.headers["transfer-encoding"] == "chunked"
        lines = list(r.iter_lines())
    assert lines[:2] == ["chunk 0", "chunk 1"] and len(lines) == 10
    body = b"x" * 200_000
    r = httpx.post(srv.url + "/echo", content=body)
    assert r.content == body


def test_ipv6(serve) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        srv = serve(hello, host="::1")
    except OSError:
        pytest.skip("IPv6 loopback unavailable")
    assert srv.url.startswith("http://[::1]:")
    assert httpx.get(srv.url).text == "Hello, world!"


def test_unix_socket(serve, tmp_path: Path) -> None:
    path = tmp_path / "pounce.sock"
    srv = serve(echo_scope, uds=str(path))
    transport = httpx.HTTPTransport(uds=str(path))
    with httpx.Client(transport=transport) as client:
        scope = client.get("http://localhost/x").json()
    assert scope["client"] is None
    assert scope["server"][0] == str(path)
    srv.stop()
    assert not path.exists()


def test_inherited_fd(serve) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    serve(hello, fd=listener.fileno())
    assert httpx.get(f"http://127.0.0.1:{port}/").text == "Hello, world!"


@pytest.mark.slow
def test_graceful_shutdown_lets_in_flight_finish(serve) -> None:
    srv = serve(slow, timeout_graceful_shutdown=10)
    result: dict[str, object] = {}

    def request() -> None:
        result["response"] = httpx.get(srv.url + "/?1.0", timeout=10)

    before = testapps.SLOW_STARTED[0]
    t = threading.Thread(target=request)
    t.start()
    wait_for(lambda: testapps.SLOW_STARTED[0] > before, what="the request to be inside the app")
    srv.server.shutdown()
    t.join(10)
    response = result["response"]
    assert isinstance(response, httpx.Response) and response.text == "done"
    # New connections are refused once draining started.
    with pytest.raises(httpx.ConnectError):
        httpx.get(srv.url, timeout=2)


@pytest.mark.slow
def test_graceful_shutdown_timeout_aborts_hung_requests(serve) -> None:
    srv = serve(slow, timeout_graceful_shutdown=0.5)
    errors: list[BaseException] = []

    def request() -> None:
        try:
            httpx.get(srv.url + "/?30", timeout=20)
        except httpx.HTTPError as exc:
            errors.append(exc)

    before = testapps.SLOW_STARTED[0]
    t = threading.Thread(target=request)
    t.start()
    wait_for(lambda: testapps.SLOW_STARTED[0] > before, what="the request to be inside the app")
    began = time.monotonic()
    srv.stop()
    assert time.monotonic() - began < 5
    t.join(10)
    assert errors  # the hung request was cut off, not waited on for 30 s


def test_pounce_run_programmatic() -> None:
    holder: dict[str, int] = {}

    class Grab:
        @pounce.hookimpl
        def pounce_sockets_bound(self, sockets):
            holder["port"] = sockets[0].getsockname()[1]

    # pounce.run blocks: stop it through the pounce_shutdown path from a thread.
    config = ServerConfig.load(None, env={}, discover=False, port=0, plugins=[Grab()])
    server = Server(config, hello, plugins=[Grab()])
    t = threading.Thread(target=server.run)
    t.start()

    def hello_answered() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{holder['port']}/").text == "Hello, world!"
        except httpx.ConnectError:
            return False  # bound, not serving yet

    try:
        wait_for(lambda: "port" in holder, what="the sockets to be bound")
        wait_for(hello_answered, 5, what="the programmatic server to answer")
    finally:
        server.shutdown()
    t.join(10)
    assert not t.is_alive()


def test_uds_permissions(serve, tmp_path: Path) -> None:
    import stat

    path = tmp_path / "perm.sock"
    serve(hello, uds=str(path), uds_permissions="600")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_ws_none_passes_upgrades_to_the_app_as_http(serve) -> None:
    srv = serve(echo_scope, websocket_implementation="none")
    response = httpx.get(srv.url + "/chat", headers={
        "Upgrade": "websocket", "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
    })
    assert response.status_code == 200
    assert response.json()["type"] == "http"
