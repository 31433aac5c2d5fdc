"""HTTP/3 (the ``http3`` plugin) against aioquic's client: the same ASGI
request cycle as over TCP, on a real UDP socket.

Each test starts a real server (HTTPS on TCP plus HTTP/3 on the same port
number over UDP) and talks to it with the HTTP/3 client of
``tests/h3client.py``; TCP responses are checked with httpx.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from pounce.testing import ServerThread, capture_logs, wait_for
from tests.h3client import H3Certs, h3_connect, run, udp_port

pytest.importorskip("aioquic")


@pytest.fixture
def certs(tmp_path: Path) -> H3Certs:
    return H3Certs(tmp_path)


@pytest.fixture
def h3(certs: H3Certs) -> Any:
    """``h3(app, **overrides)``: a server with HTTP/3, stopped at teardown."""
    started: list[ServerThread] = []

    def start(app: Any, **overrides: Any) -> ServerThread:
        server = ServerThread(app, **certs.overrides(**overrides)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


async def read_all(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return body
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The request as JSON: method, path, query, headers, body length and
    its first bytes, the scope's addresses and TLS."""
    if scope["type"] != "http":
        return
    body = await read_all(receive)
    data = {
        "http_version": scope["http_version"], "scheme": scope["scheme"], "method": scope["method"],
        "path": scope["path"], "query": scope["query_string"].decode(), "client": scope["client"],
        "server": scope["server"], "headers": [[n.decode(), v.decode()] for n, v in scope["headers"]],
        "length": len(body), "start": body[:16].decode("latin-1"),
        "tls": scope["extensions"].get("tls", {}).get("tls_version"),
        "trailers": "http.response.trailers" in scope["extensions"],
    }
    payload = json.dumps(data).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": payload})


def test_get_and_post_carry_the_same_scope_as_tcp(h3: Any, certs: H3Certs) -> None:
    server = h3(echo)
    port = udp_port(server)
    assert port == server.port  # the TCP port's number, on UDP

    async def main() -> tuple[Any, Any]:
        async with h3_connect(port, certs.ca_pem) as client:
            get = await client.request("GET", "/a/b%20c?x=1", headers=[("x-one", "1"), ("host", "ignored")])
            post = await client.request("POST", "/upload", body=b"q" * 100_000)
            return get, post

    get, post = run(main())
    assert get.status == 200 and get.header("content-type") == "application/json"
    data = json.loads(get.body)
    assert data["http_version"] == "3" and data["scheme"] == "https" and data["method"] == "GET"
    assert data["path"] == "/a/b c" and data["query"] == "x=1"
    # :authority becomes the host header, first, replacing the client's own
    assert data["headers"][0] == ["host", f"localhost:{port}"]
    assert ["x-one", "1"] in data["headers"] and ["host", "ignored"] not in data["headers"]
    assert not any(name.startswith(":") for name, _ in data["headers"])
    assert data["client"][0] == "127.0.0.1" and data["server"] == ["127.0.0.1", port]
    assert data["tls"] == 0x0304 and data["trailers"] is True
    assert get.header("server") == "pounce" and get.header("date")
    assert get.header("content-length") == str(len(get.body))
    assert get.header("alt-svc") is None  # advertised over TCP, not to an HTTP/3 client
    assert json.loads(post.body)["length"] == 100_000


def test_tcp_responses_advertise_http3_with_alt_svc(h3: Any, certs: H3Certs) -> None:
    server = h3(echo, http3_alt_svc_max_age=3600)
    response = httpx.get(server.url, verify=certs.client_context())
    assert response.headers["alt-svc"] == f'h3=":{udp_port(server)}"; ma=3600'
    # pounce's own answers carry it too
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        with certs.client_context().wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
            answer = tls.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400") and b"\r\nalt-svc: h3=\":" in answer


def test_a_separate_udp_port(h3: Any, certs: H3Certs) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    server = h3(echo, http3_port=port)
    assert udp_port(server) == port
    assert httpx.get(server.url, verify=certs.client_context()).headers["alt-svc"].startswith(f'h3=":{port}"')
    reply = run(_one(port, certs))
    assert reply.status == 200


async def _one(port: int, certs: H3Certs, method: str = "GET", path: str = "/", **kw: Any) -> Any:
    async with h3_connect(port, certs.ca_pem) as client:
        return await client.request(method, path, **kw)


async def streamer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Ten body pieces, each sent only after the test's client saw the last."""
    if scope["type"] != "http":
        return
    gate: asyncio.Queue[None] = STREAM_GATES[scope["path"]]
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for i in range(10):
        await send({"type": "http.response.body", "body": b"piece %d;" % i, "more_body": True})
        await gate.get()
    await send({"type": "http.response.body", "body": b"end"})


STREAM_GATES: dict[str, Any] = {}


def test_a_response_streams_piece_by_piece(h3: Any, certs: H3Certs) -> None:
    server = h3(streamer)
    port = udp_port(server)

    async def main() -> bytes:
        gate = STREAM_GATES["/s"] = _Gate()
        async with h3_connect(port, certs.ca_pem) as client:
            stream = client.open("GET", "/s", end=True)
            await stream.headers()
            seen = b""
            for i in range(10):
                while f"piece {i};".encode() not in seen:
                    seen += await stream.read_some()
                gate.release()
            reply = await stream.done()
            return seen + reply.body

    body = run(main())
    assert body == b"".join(b"piece %d;" % i for i in range(10)) + b"end"


class _Gate:
    """An app-side ``get()`` the test releases: the app runs on the
    server's loop, the client on the test's."""

    def __init__(self) -> None:
        self.sem = threading.Semaphore(0)

    async def get(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.sem.acquire)

    def release(self) -> None:
        self.sem.release()


HOLD = threading.Event()


async def late_reader(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads nothing until the test says so, then all of the body."""
    if scope["type"] != "http":
        return
    await asyncio.get_running_loop().run_in_executor(None, HOLD.wait, 20)
    body = await read_all(receive)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"%d" % len(body)})


def test_the_receive_window_opens_only_as_the_app_reads(h3: Any, certs: H3Certs) -> None:
    """A client sending 4 MiB to an app that does not read is held at one
    stream window (256 KiB): flow control follows what the app consumes,
    not what arrives. Once the app reads, the whole body goes through."""
    from pounce.plugins.http3.settings import STREAM_WINDOW

    HOLD.clear()
    server = h3(late_reader)
    port = udp_port(server)
    size = 4 * 1024 * 1024

    async def main() -> tuple[int, int, Any]:
        async with h3_connect(port, certs.ca_pem) as client:
            stream = client.open("POST", "/", end=False)
            stream.send(b"x" * size, end=True)
            quic = client.protocol._quic
            state = quic._streams[stream.stream_id]
            deadline = asyncio.get_running_loop().time() + 10
            # Blocked: everything the server allowed is sent.
            while state.sender.highest_offset < state.max_stream_data_remote:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
            # Two round trips later the server has seen it all and still
            # grants nothing more.
            await client.protocol.ping()
            await client.protocol.ping()
            granted_while_held = state.max_stream_data_remote
            sent_while_held = state.sender.highest_offset
            HOLD.set()
            reply = await stream.done(20)
            return granted_while_held, sent_while_held, reply

    granted, sent, reply = run(main(), timeout=40)
    assert granted <= STREAM_WINDOW + 64 and sent <= granted
    assert reply.status == 200 and reply.body == b"%d" % size


async def trailers_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = await read_all(receive)
    await send({"type": "http.response.start", "status": 200, "trailers": True,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body, "more_body": True})
    await send({"type": "http.response.body", "body": b"!"})
    await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"%d" % len(body))]})


def test_trailers_both_ways(h3: Any, certs: H3Certs) -> None:
    server = h3(trailers_app)
    port = udp_port(server)

    async def main() -> Any:
        async with h3_connect(port, certs.ca_pem) as client:
            stream = client.open("POST", "/", end=False)
            stream.send(b"abc")
            # The request's own trailers end its body (ASGI has no place for them).
            stream.send_trailers([(b"x-request-trailer", b"yes")])
            return await stream.done()

    reply = run(main())
    assert reply.status == 200 and reply.body == b"abc!"
    assert reply.trailers == [(b"x-checksum", b"3")]
    assert reply.header("content-length") is None


DISCONNECTS: list[str] = []
DISCONNECTED = threading.Event()


async def waits_for_disconnect(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"started", "more_body": True})
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            DISCONNECTS.append(scope["path"])
            DISCONNECTED.set()
            return


def test_a_stream_reset_is_http_disconnect_and_the_connection_goes_on(h3: Any, certs: H3Certs) -> None:
    DISCONNECTED.clear()
    DISCONNECTS.clear()
    server = h3(waits_for_disconnect)
    port = udp_port(server)

    async def main() -> Any:
        async with h3_connect(port, certs.ca_pem) as client:
            stream = client.open("GET", "/reset-me", end=True)
            assert await stream.read_some() == b"started"
            stream.reset()
            await asyncio.get_running_loop().run_in_executor(None, DISCONNECTED.wait, 10)
            # The same connection still serves.
            DISCONNECTED.clear()
            again = client.open("GET", "/again", end=True)
            assert await again.read_some() == b"started"
            again.reset()
            await asyncio.get_running_loop().run_in_executor(None, DISCONNECTED.wait, 10)

    run(main())
    assert DISCONNECTS == ["/reset-me", "/again"]


def test_closing_the_connection_is_http_disconnect(h3: Any, certs: H3Certs) -> None:
    DISCONNECTED.clear()
    DISCONNECTS.clear()
    server = h3(waits_for_disconnect)
    port = udp_port(server)

    async def main() -> None:
        async with h3_connect(port, certs.ca_pem) as client:
            stream = client.open("GET", "/closed", end=True)
            assert await stream.read_some() == b"started"

    run(main())
    assert DISCONNECTED.wait(10)
    assert DISCONNECTS == ["/closed"]


async def continue_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = await read_all(receive)
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_expect_100_continue(h3: Any, certs: H3Certs) -> None:
    server = h3(continue_app)
    port = udp_port(server)

    async def main() -> Any:
        async with h3_connect(port, certs.ca_pem) as client:
            stream = client.open("PUT", "/", [("expect", "100-continue")], end=False)
            deadline = asyncio.get_running_loop().time() + 10
            while not stream.reply.interim:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
            stream.send(b"body after 100", end=True)
            return await stream.done()

    reply = run(main())
    assert reply.interim == [100] and reply.status == 201 and reply.body == b"body after 100"


async def fails(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/late":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
    if scope["path"] == "/bad-header":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-bad", b"a\r\nb")]})
        await send({"type": "http.response.body", "body": b""})
    raise RuntimeError("the app fails")


def test_app_errors(h3: Any, certs: H3Certs, errors: Any) -> None:
    server = h3(fails)
    port = udp_port(server)

    async def main() -> list[Any]:
        async with h3_connect(port, certs.ca_pem) as client:
            early = await client.request("GET", "/early")
            late = await client.request("GET", "/late")
            bad = await client.request("GET", "/bad-header")
            after = await client.request("GET", "/early")
            return [early, late, bad, after]

    early, late, bad, after = run(main())
    assert early.status == 500 and after.status == 500
    # Part of the response was sent: the stream is reset (H3_INTERNAL_ERROR),
    # never ended cleanly (what was not on the wire yet is dropped with it).
    assert late.reset_code == 0x102 and late.status in (None, 200)
    assert bad.status == 500  # the header never reaches the wire
    assert any("error in ASGI app" in m for m in errors.messages())


async def head_and_204(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    status = 204 if scope["path"] == "/empty" else 200
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"connection", b"keep-alive"), (b"transfer-encoding", b"chunked")]})
    await send({"type": "http.response.body", "body": b"" if status == 204 else b"hello", "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def test_head_204_and_connection_headers(h3: Any, certs: H3Certs) -> None:
    server = h3(head_and_204)
    port = udp_port(server)

    async def main() -> list[Any]:
        async with h3_connect(port, certs.ca_pem) as client:
            return [await client.request("HEAD", "/"), await client.request("GET", "/empty"),
                    await client.request("GET", "/")]

    head, empty, get = run(main())
    assert head.status == 200 and head.body == b""
    assert empty.status == 204 and empty.body == b""
    assert get.body == b"hello"
    for reply in (head, empty, get):  # HTTP/3 forbids them: dropped, not sent
        assert reply.header("connection") is None and reply.header("transfer-encoding") is None


def test_limits_and_timeouts(h3: Any, certs: H3Certs) -> None:
    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/slow":
            await asyncio.sleep(5)
        body = await read_all(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % len(body)})

    server = h3(slow, http_max_request_body_size=1000, http_timeout_request=0.3)
    port = udp_port(server)

    async def main() -> list[Any]:
        async with h3_connect(port, certs.ca_pem) as client:
            declared = await client.request("POST", "/", headers=[("content-length", "5000")], body=b"x" * 5000)
            streamed = client.open("POST", "/", end=False)
            streamed.send(b"y" * 3000)
            streamed_reply = await streamed.done()
            small = await client.request("POST", "/", body=b"z" * 10)
            timed_out = await client.request("GET", "/slow")
            return [declared, streamed_reply, small, timed_out]

    declared, streamed, small, timed_out = run(main())
    assert declared.status == 413 and streamed.status == 413
    assert small.status == 200 and small.body == b"10"
    assert timed_out.status == 504


def test_access_log_and_request_observers(h3: Any, certs: H3Certs) -> None:
    seen: list[tuple[str, int, int]] = []

    class Observer:
        from pounce import hookimpl

        @hookimpl
        def pounce_request_observer(self, config: Any) -> Any:
            return lambda scope, status, sent, duration: seen.append((scope["http_version"], status, sent))

    server = ServerThread(echo, plugins=[Observer()], **certs.overrides())
    with server, capture_logs(logging.INFO, ["pounce.access"]) as records:
        reply = run(_one(udp_port(server), certs, path="/logged"))
        wait_for(lambda: seen, 5, what="the request observer")
    assert reply.status == 200
    assert seen == [("3", 200, len(reply.body))]
    assert any('"GET /logged HTTP/3.0" 200' in r.getMessage() for r in records.records)


def test_proxy_headers_from_a_trusted_peer(h3: Any, certs: H3Certs) -> None:
    server = h3(echo, forwarded_allow_ips=["127.0.0.1"])
    reply = run(_one(udp_port(server), certs, headers=[("x-forwarded-for", "203.0.113.7")]))
    assert json.loads(reply.body)["client"][0] == "203.0.113.7"
    untrusted = h3(echo, forwarded_allow_ips=["10.0.0.1"])
    reply = run(_one(udp_port(untrusted), certs, headers=[("x-forwarded-for", "203.0.113.7")]))
    assert json.loads(reply.body)["client"][0] == "127.0.0.1"


def test_limit_concurrency_counts_quic_connections(h3: Any, certs: H3Certs) -> None:
    server = h3(echo, limit_concurrency=1)
    port = udp_port(server)

    async def main() -> list[Any]:
        async with h3_connect(port, certs.ca_pem) as first:
            ok = await first.request("GET", "/")
            async with h3_connect(port, certs.ca_pem) as second:
                over = await second.request("GET", "/")
            return [ok, over]

    ok, over = run(main())
    assert ok.status == 200 and over.status == 503


def test_early_data_is_off_by_default_and_refuses_unsafe_methods_when_on(h3: Any, certs: H3Certs) -> None:
    """With ``early_data``, a resumed connection may send requests in 0-RTT:
    GET is served (with ``early-data: 1``), POST gets 425 Too Early."""
    off = h3(echo)
    issued, _ = run(_resume_with_tickets(udp_port(off), certs))
    assert not issued  # no session tickets: no resumption, no 0-RTT

    on = h3(echo, http3_early_data=True)
    issued, replies = run(_resume_with_tickets(udp_port(on), certs))
    assert issued
    get, post = replies
    assert get.status == 200 and ["early-data", "1"] in json.loads(get.body)["headers"]
    assert post.status == 425


async def _resume_with_tickets(port: int, certs: H3Certs) -> tuple[bool, list[Any]]:
    tickets: list[Any] = []
    async with h3_connect(port, certs.ca_pem, session_ticket_handler=tickets.append) as client:
        await client.request("GET", "/")
    if not tickets:
        return False, []
    async with h3_connect(port, certs.ca_pem, session_ticket=tickets[-1], wait_connected=False) as client:
        get = client.open("GET", "/early", end=True)
        post = client.open("POST", "/early", end=False)
        post.send(b"data", end=True)
        return True, [await get.done(), await post.done()]


def test_pathsend_streams_a_file_with_flow_control(h3: Any, certs: H3Certs, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4096 * 2  # 2 MiB
    path = tmp_path / "big.bin"
    path.write_bytes(data)

    async def files(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        assert "http.response.pathsend" in scope["extensions"]
        message: dict[str, Any] = {"type": "http.response.pathsend", "path": str(path)}
        if scope["path"] == "/range":
            message.update(offset=1000, count=5000)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send(message)

    server = h3(files)
    port = udp_port(server)

    async def main() -> list[Any]:
        async with h3_connect(port, certs.ca_pem) as client:
            # (No HEAD here: aioquic's client takes a Content-Length without
            # a body for a malformed response, HEAD or not.)
            return [await client.request("GET", "/", timeout=30), await client.request("GET", "/range")]

    whole, part = run(main(), timeout=60)
    assert whole.status == 200 and whole.body == data and whole.header("content-length") == str(len(data))
    assert part.body == data[1000:6000] and part.header("content-length") == "5000"


def test_no_pluggy_call_per_http3_connection_or_request(h3: Any, certs: H3Certs) -> None:
    """As tests/integration/test_no_pluggy_per_request.py holds TCP to it:
    connections and requests over HTTP/3 call no hook."""
    server = h3(echo)
    manager = server.server.plugins
    calls: list[str] = []
    undo = manager.add_hookcall_monitoring(lambda name, impls, kwargs: calls.append(name),
                                           lambda outcome, name, impls, kwargs: None)

    async def main() -> list[int]:
        statuses = []
        for _ in range(5):
            async with h3_connect(udp_port(server), certs.ca_pem) as client:
                for i in range(6):
                    reply = await client.request("POST" if i % 2 else "GET", "/", body=b"x" * 100 if i % 2 else None)
                    statuses.append(reply.status)
        return statuses

    try:
        statuses = run(main())
    finally:
        undo()
    assert statuses == [200] * 30
    assert calls == [], f"pluggy hooks called while serving HTTP/3: {sorted(set(calls))}"
