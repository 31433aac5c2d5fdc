"""ASGI HTTP 2.4 semantics on a real pounce: request body streaming and
backpressure, response streaming, disconnects, trailers, error endings,
keep-alive, pipelining, HTTP/1.0, 100-continue, unread bodies, HEAD, 204/304,
default headers, framing, limits and timeouts."""

from __future__ import annotations

import asyncio
import contextvars
import socket
import subprocess
import threading
import time
from typing import Any

import httpx
import pytest

from pounce.testing import wait_for
from testapps import read_body
from tests.helpers import connect, read_until, read_until_closed, send_and_read, settled

Scope = dict[str, Any]


async def respond(send: Any, status: int = 200, body: bytes = b"", headers: list[Any] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": body})


# -- request bodies ----------------------------------------------------------------


def test_request_body_streamed_as_it_arrives(serve: Any) -> None:
    arrivals: list[tuple[float, bytes, bool]] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
            arrivals.append((time.monotonic(), message.get("body", b""), more))
        await respond(send, body=b"%d" % len(arrivals))

    srv = serve(app, lifespan="off")
    sock = connect(srv.port)
    sock.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
    wait_for(lambda: arrivals, what="the first chunk to reach the app on its own")
    sent_second = time.monotonic()
    sock.sendall(b"6\r\nsecond\r\n0\r\n\r\n")
    data = read_until(sock, b"\r\n\r\n")
    sock.close()
    assert data.startswith(b"HTTP/1.1 200")
    assert arrivals[0][1] == b"first" and arrivals[0][2] is True
    assert arrivals[0][0] < sent_second  # delivered before the rest was even sent
    assert b"".join(a[1] for a in arrivals) == b"firstsecond"
    assert arrivals[-1][2] is False


def test_content_length_and_chunked_bodies(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await respond(send, body=await read_body(receive))

    srv = serve(app, lifespan="off")
    with httpx.Client(base_url=srv.url) as client:
        assert client.post("/", content=b"x" * 100_000).content == b"x" * 100_000

        def gen() -> Any:
            yield b"abc"
            yield b"def"

        response = client.post("/", content=gen())
        assert response.content == b"abcdef"


@pytest.mark.slow
def test_backpressure_slow_reader_bounds_buffering(serve: Any) -> None:
    """An app that does not receive makes pounce stop reading: the first
    message it finally reads is bounded, however much the client pushed."""
    first: list[int] = []
    total = 16 * 1024 * 1024

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await asyncio.sleep(1.5)  # the behaviour under test: a slow reader, while the client pushes
        message = await receive()
        first.append(len(message["body"]))
        size = len(message["body"])
        while message.get("more_body"):
            message = await receive()
            size += len(message["body"])
        await respond(send, body=b"%d" % size)

    srv = serve(app, lifespan="off")
    sock = connect(srv.port, timeout=30)
    sock.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % total)
    sender = threading.Thread(target=sock.sendall, args=(b"z" * total,), daemon=True)
    sender.start()
    data = read_until(sock, b"\r\n\r\n", timeout=30)
    body = data.partition(b"\r\n\r\n")[2] or read_until(sock, b"", timeout=1)
    sender.join(10)
    sock.close()
    assert data.startswith(b"HTTP/1.1 200")
    assert body.endswith(b"%d" % total)
    # 64 KiB high-water mark plus at most a read or two in flight.
    assert first[0] <= 1024 * 1024, first


def test_max_request_body_size(serve: Any) -> None:
    calls: list[str] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        calls.append(scope["path"])
        body = await read_body(receive)
        await respond(send, body=b"%d" % len(body))

    srv = serve(app, lifespan="off", http_max_request_body_size=1000)
    with httpx.Client(base_url=srv.url) as client:
        assert client.post("/ok", content=b"x" * 1000).text == "1000"
        assert client.post("/big", content=b"x" * 1001).status_code == 413

        def gen() -> Any:
            for _ in range(10):
                yield b"y" * 200

        assert client.post("/chunked", content=gen()).status_code == 413
    assert "/big" not in calls  # refused from its Content-Length, before the app


def test_expect_100_continue_sent_only_when_app_receives(serve: Any) -> None:
    called = threading.Event()
    release = threading.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/reject":
            await respond(send, 417, b"no")
            return
        called.set()
        await asyncio.to_thread(release.wait, 10)
        await respond(send, body=await read_body(receive))

    srv = serve(app, lifespan="off")
    sock = connect(srv.port)
    sock.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    assert called.wait(5)
    # Nothing yet: the app runs but has not asked for the body (a window by
    # nature: checking that something does not arrive).
    sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        sock.recv(100)
    release.set()
    interim = read_until(sock, b"\r\n\r\n")
    assert interim.startswith(b"HTTP/1.1 100 ")
    sock.sendall(b"hello")
    data = read_until(sock, b"hello")
    assert b"HTTP/1.1 200" in data and data.endswith(b"hello")
    sock.close()

    # An app that answers without reading: no 100, and the connection closes
    # (the client may or may not send its body now).
    data, closed = send_and_read(
        srv.port, b"POST /reject HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 417") and b" 100 " not in data and closed


def test_unread_small_body_is_drained_and_connection_reused(serve: Any) -> None:
    paths: list[str] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            paths.append(scope["path"])
            await respond(send, body=scope["path"].encode())

    srv = serve(app, lifespan="off")
    sock = connect(srv.port)
    body = b"GET /evil HTTP/1.1\r\nHost: a\r\n\r\n" + b"x" * 1000
    sock.sendall(b"POST /one HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    sock.sendall(b"GET /two HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    data, closed = read_until_closed(sock)
    sock.close()
    assert data.count(b"HTTP/1.1 200") == 2 and data.endswith(b"/two") and closed
    assert paths == ["/one", "/two"]  # the body was never parsed as a request


def test_unread_large_body_closes_connection(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await respond(send, body=b"early")

    srv = serve(app, lifespan="off")
    sock = connect(srv.port)
    size = 4 * 1024 * 1024
    sock.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size)
    sender = threading.Thread(target=lambda: _quiet_sendall(sock, b"x" * size), daemon=True)
    sender.start()
    data, closed = read_until_closed(sock, timeout=10)
    sender.join(10)
    sock.close()
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"early") and closed


def _quiet_sendall(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass


# -- responses -------------------------------------------------------------------


def test_streaming_response_arrives_incrementally(serve: Any) -> None:
    release = threading.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": b"data: one\n\n", "more_body": True})
        for _ in range(100):
            if release.is_set():
                break
            await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b"data: two\n\n", "more_body": False})

    srv = serve(app, lifespan="off")
    with httpx.Client(base_url=srv.url) as client, client.stream("GET", "/") as response:
        assert response.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in response.headers
        chunks = response.iter_raw()
        assert next(chunks) == b"data: one\n\n"
        release.set()
        assert b"".join(chunks) == b"data: two\n\n"


def test_content_length_set_for_single_body(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await respond(send, body=b"hello")

    srv = serve(app, lifespan="off")
    response = httpx.get(srv.url)
    assert response.headers["content-length"] == "5" and "transfer-encoding" not in response.headers


def test_disconnect_reaches_streaming_app(serve: Any) -> None:
    seen: dict[str, Any] = {}
    done = threading.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return

        async def watch() -> None:
            message = await receive()  # the (empty) request body first
            while message["type"] != "http.disconnect":
                message = await receive()
            seen["message"] = message

        watcher = asyncio.ensure_future(watch())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for _ in range(200):
                await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
                await asyncio.sleep(0.02)
        except OSError as exc:
            seen["send_error"] = exc
        await asyncio.wait_for(watcher, 5)
        done.set()

    srv = serve(app, lifespan="off")
    sock = connect(srv.port)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert b"tick" in read_until(sock, b"tick")
    sock.close()
    assert done.wait(5)
    assert seen["message"] == {"type": "http.disconnect"}
    assert isinstance(seen["send_error"], OSError)


def test_receive_after_response_is_disconnect(serve: Any) -> None:
    messages: list[dict[str, Any]] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await read_body(receive)
            await respond(send, body=b"ok")
            messages.append(await asyncio.wait_for(receive(), 5))

    srv = serve(app, lifespan="off")
    assert httpx.get(srv.url).text == "ok"
    wait_for(lambda: messages, 5, what="the app's receive() after its response")
    assert messages == [{"type": "http.disconnect"}]


def trailers_app_factory(scopes: list[Scope]) -> Any:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        scopes.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"trailer", b"x-checksum")],
                    "trailers": True})
        await send({"type": "http.response.body", "body": b"part1", "more_body": True})
        await send({"type": "http.response.body", "body": b"part2", "more_body": False})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc123")],
                    "more_trailers": False})

    return app


def test_trailers_sent_when_client_accepts_them(serve: Any) -> None:
    scopes: list[Scope] = []
    srv = serve(trailers_app_factory(scopes), lifespan="off")
    data, closed = send_and_read(srv.port,
                                 b"GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nConnection: close\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert body == b"5\r\npart1\r\n5\r\npart2\r\n0\r\nx-checksum: abc123\r\n\r\n"
    assert "http.response.trailers" in scopes[0]["extensions"]


def test_trailers_dropped_without_te(serve: Any) -> None:
    scopes: list[Scope] = []
    srv = serve(trailers_app_factory(scopes), lifespan="off")
    with httpx.Client(base_url=srv.url) as client:
        first = client.get("/")
        second = client.get("/")  # the connection is still usable
    assert first.text == "part1part2" and second.text == "part1part2"
    assert "http.response.trailers" not in scopes[0]["extensions"]


def test_app_that_never_starts_gets_500(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/raise":
            raise ValueError("boom")

    srv = serve(app, lifespan="off")
    assert httpx.get(srv.url + "/quiet").status_code == 500
    response = httpx.get(srv.url + "/raise")
    assert response.status_code == 500 and b"boom" not in response.content


def test_app_raising_mid_response_closes_connection(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("boom")

    srv = serve(app, lifespan="off")
    data, closed = send_and_read(srv.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert closed and data.count(b"HTTP/1.1") == 1
    assert data.startswith(b"HTTP/1.1 200") and b"partial" in data and not data.endswith(b"0\r\n\r\n")


def test_app_returning_mid_chunked_response_closes_connection(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})

    srv = serve(app, lifespan="off")
    with pytest.raises(httpx.RemoteProtocolError), httpx.Client(base_url=srv.url) as client:
        client.get("/")


def test_head_has_headers_without_body(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await respond(send, body=b"twelve bytes")

    srv = serve(app, lifespan="off")
    data, _ = send_and_read(
        srv.port, b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    first, _, rest = data.partition(b"\r\n\r\n")
    assert b"content-length: 12" in first.lower()
    assert rest.startswith(b"HTTP/1.1 200")  # no body bytes between the two responses
    assert rest.endswith(b"twelve bytes")


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(serve: Any, status: int) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await respond(send, status, b"should not appear")

    srv = serve(app, lifespan="off")
    data, _ = send_and_read(
        srv.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert b"should not appear" not in data
    assert data.count(b"HTTP/1.1 %d" % status) == 2
    assert b"content-length" not in data.split(b"\r\n\r\n")[0].lower() or status == 304


def test_default_headers_and_switches(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = [(b"server", b"mine")] if scope["path"] == "/own" else []
            await respond(send, body=b"x", headers=headers)

    srv = serve(app, lifespan="off", headers=["X-Frame-Options: DENY", "x-extra:1"])
    response = httpx.get(srv.url)
    assert response.headers["server"] == "pounce" and "date" in response.headers
    assert response.headers["x-frame-options"] == "DENY" and response.headers["x-extra"] == "1"
    own = httpx.get(srv.url + "/own")
    assert own.headers.get_list("server") == ["mine"]

    bare = serve(app, lifespan="off", server_header=False, date_header=False)
    response = httpx.get(bare.url)
    assert "server" not in response.headers and "date" not in response.headers


# -- connections -----------------------------------------------------------------


@pytest.mark.slow
def test_pipelined_requests_answered_in_order(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            # Answers ready out of order (/b first): the order on the wire is the test.
            await asyncio.sleep(float(scope["query_string"] or 0))
            await respond(send, body=scope["path"].encode())

    srv = serve(app, lifespan="off")
    sock = connect(srv.port)
    sock.sendall(
        b"GET /a?0.3 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /b?0 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /c?0.1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    data, closed = read_until_closed(sock)
    sock.close()
    assert closed
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in data.split(b"HTTP/1.1 200 OK")[1:]]
    assert [b[:2] for b in bodies] == [b"/a", b"/b", b"/c"]


def test_many_pipelined_requests_to_an_app_that_never_waits(serve: Any) -> None:
    """Each answer is complete inside the app's first step (started eagerly):
    the request behind it is still taken in order, and without nesting one
    request's handling inside the previous one's."""
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await respond(send, body=scope["path"].encode())

    srv = serve(app, lifespan="off")
    count = 3000
    requests = b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(count - 1))
    with connect(srv.port, timeout=30) as sock:
        sock.sendall(requests + b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data, closed = read_until_closed(sock, timeout=30)
    assert closed
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in data.split(b"HTTP/1.1 200 OK")[1:]]
    assert bodies == [b"/%d" % i for i in range(count - 1)] + [b"/last"]


def test_context_variables_set_by_one_request_are_not_seen_by_the_next(serve: Any) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="none")

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen = var.get()
            var.set(scope["path"])
            await respond(send, body=seen.encode())

    srv = serve(app, lifespan="off")
    with httpx.Client(base_url=f"http://127.0.0.1:{srv.port}", timeout=5) as client:
        answers = [client.get(f"/{i}").text for i in range(5)]
    assert answers == ["none"] * 5


def test_keep_alive_reuses_connection_and_close_closes(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await respond(send, body=b"%d" % scope["client"][1])

    srv = serve(app, lifespan="off")
    with httpx.Client(base_url=srv.url) as client:
        ports = {client.get("/").text for _ in range(3)}
    assert len(ports) == 1
    data, closed = send_and_read(srv.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert closed and b"connection: close" in data.lower()


@pytest.mark.parametrize("keep_alive", [False, True])
def test_http_10(serve: Any, keep_alive: bool) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        assert scope["http_version"] == "1.0"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"streamed ", "more_body": True})
        await send({"type": "http.response.body", "body": b"body"})

    srv = serve(app, lifespan="off")
    sock = connect(srv.port)
    extra = b"Connection: keep-alive\r\n" if keep_alive else b""
    sock.sendall(b"GET / HTTP/1.0\r\n" + extra + b"\r\n")
    data, closed = read_until_closed(sock)
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    # No chunked coding for a 1.0 client: the body ends with the connection.
    assert b"transfer-encoding" not in head.lower() and body == b"streamed body" and closed


@pytest.mark.slow
def test_timeout_keep_alive_closes_idle_connection(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await respond(send, body=b"ok")

    srv = serve(app, lifespan="off", timeout_keep_alive=0.5)
    sock = connect(srv.port)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    started = time.monotonic()
    data, closed = read_until_closed(sock, timeout=5)
    sock.close()
    assert data.endswith(b"ok") and closed
    assert 0.3 < time.monotonic() - started < 3


# -- limits and timeouts ------------------------------------------------------------


@pytest.mark.slow
def test_slowloris_closed_after_timeout_request_header(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await respond(send, body=b"ok")

    srv = serve(app, lifespan="off", http_timeout_request_header=0.6)
    sock = connect(srv.port)
    started = time.monotonic()
    closed_at = None
    request = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-Slow: " + b"y" * 100
    for byte in request:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            closed_at = time.monotonic()
            break
        time.sleep(0.05)  # a byte every 50 ms keeps resetting a naive per-read timer
        sock.setblocking(False)
        try:
            if sock.recv(1) == b"":
                closed_at = time.monotonic()
                break
        except BlockingIOError:
            pass
        except OSError:
            closed_at = time.monotonic()
            break
        finally:
            sock.setblocking(True)
    sock.close()
    assert closed_at is not None and closed_at - started < 2.5
    assert httpx.get(srv.url).text == "ok"


def test_limit_concurrency(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await respond(send, body=b"ok")

    srv = serve(app, lifespan="off", limit_concurrency=2)
    first, second = httpx.Client(base_url=srv.url), httpx.Client(base_url=srv.url)
    try:
        assert first.get("/").text == "ok" and second.get("/").text == "ok"
        over = httpx.get(srv.url)
        assert over.status_code == 503
        # Those already served keep being served on their connections.
        assert first.get("/").text == "ok" and second.get("/").text == "ok"
    finally:
        first.close()
        second.close()
    wait_for(lambda: httpx.get(srv.url).status_code == 200, 5, interval=0.05,
             what="a new connection to be served after the others closed")


def test_backlog_applied_to_listening_socket(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await respond(send, body=b"ok")

    srv = serve(app, lifespan="off", backlog=37)
    assert httpx.get(srv.url).text == "ok"
    try:
        out = subprocess.run(["ss", "-Hltn", f"sport = :{srv.port}"], capture_output=True, text=True,
                             timeout=10).stdout
    except FileNotFoundError:
        pytest.skip("ss (iproute2) is not installed")
    # For a listening socket, ss shows the backlog in the Send-Q column.
    assert out.split()[2] == "37", out


def test_large_head_in_one_read_gets_431(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await respond(send, body=b"ok")

    srv = serve(app, lifespan="off", http_max_incomplete_event_size=2048)
    data, closed = send_and_read(srv.port, b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 3000 + b"\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 431") and closed
    data, closed = send_and_read(srv.port, b"GET /" + b"p" * 3000 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 414") and closed


def test_invalid_response_header_gets_500_not_injection(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await respond(send, body=b"x", headers=[(b"x-evil", b"a\r\nSet-Cookie: injected=1")])

    srv = serve(app, lifespan="off")
    data, closed = send_and_read(srv.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 500") and b"injected" not in data and closed


def test_body_shorter_than_declared_length_closes(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"12345", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    srv = serve(app, lifespan="off")
    data, closed = send_and_read(srv.port,
                                 b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
    # The client must not take the next response for the missing 5 bytes.
    assert data.count(b"HTTP/1.1 ") == 1 and data.endswith(b"12345") and closed


def test_app_raising_after_start_before_body_gets_500(serve: Any) -> None:
    """Nothing is on the wire until the first body message (the spec allows
    holding the head back), so the response can still be replaced."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-app", b"1")]})
        raise ValueError("boom")

    srv = serve(app, lifespan="off")
    data, closed = send_and_read(srv.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 500") and data.count(b"HTTP/1.1") == 1 and closed
    assert b"x-app" not in data


@pytest.mark.slow
def test_limit_concurrency_sequential_clients_not_refused(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await respond(send, body=b"ok")

    srv = serve(app, lifespan="off", limit_concurrency=1)
    statuses = [httpx.get(srv.url).status_code for _ in range(20)]
    assert statuses == [200] * 20


def test_timeout_keep_alive_zero_closes_when_idle_but_serves_pipeline(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await respond(send, body=scope["path"].encode())

    srv = serve(app, lifespan="off", timeout_keep_alive=0)
    data, closed = send_and_read(srv.port, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
                                 timeout=3)
    assert data.endswith(b"/b") and data.count(b"HTTP/1.1 200") == 2 and closed


@pytest.mark.slow
def test_pipelining_client_that_never_reads_is_not_answered_into_memory(serve: Any) -> None:
    """300 pipelined requests for 256 KiB each from a client that reads
    nothing: pounce stops taking requests once its write buffer is full
    instead of queueing 75 MiB of answers."""
    calls: list[int] = []
    body = b"r" * 256 * 1024

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            calls.append(1)
            await respond(send, body=body)

    srv = serve(app, lifespan="off", timeout_keep_alive=30)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", srv.port))
    sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" * 300)
    wait_for(lambda: calls, what="the first request to reach the app")
    taken = settled(lambda: len(calls), quiet=0.5)  # then pounce stops taking more
    # Reading now lets everything through, in order.
    total = 0
    deadline = time.monotonic() + 30
    while len(calls) < 300 or total < 300 * len(body):
        chunk = sock.recv(1 << 20)
        if not chunk or time.monotonic() > deadline:
            break
        total += len(chunk)
    sock.close()
    assert taken < 100, taken
    assert len(calls) == 300
