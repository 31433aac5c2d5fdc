"""HTTP/1.0 keep-alive: a 1.0 request with ``Connection: keep-alive`` gets
``Connection: keep-alive`` back and the connection carries the next request;
without it, 1.0 closes. ApacheBench's ``-k`` is the real client that relies
on it."""

from __future__ import annotations

import re
import socket
import subprocess
from typing import Any

from pounce.testing import ServerThread
from tests.helpers import need_command, read_until_closed


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    assert scope["http_version"] == "1.0"
    body = b"hello" if scope["path"] != "/stream" else b""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    if scope["path"] == "/stream":
        await send({"type": "http.response.body", "body": b"part ", "more_body": True})
        await send({"type": "http.response.body", "body": b"two"})
    else:
        await send({"type": "http.response.body", "body": body})


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return head + b"\r\n\r\n" + body


def test_keep_alive_keeps_the_connection() -> None:
    with ServerThread(app, lifespan="off", logging_access_log=False) as srv, \
            socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        for _ in range(3):
            sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            response = read_response(sock)
            assert response.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"\r\nConnection: keep-alive\r\n" in response and response.endswith(b"hello")
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")  # the last one, without keep-alive
        data, closed = read_until_closed(sock)
    assert closed and b"Connection: close" in data and data.endswith(b"hello")


def test_a_streamed_response_to_http10_still_closes() -> None:
    with ServerThread(app, lifespan="off", logging_access_log=False) as srv, \
            socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        data, closed = read_until_closed(sock)
    assert closed and data.endswith(b"\r\n\r\npart two") and b"keep-alive" not in data.lower()


def test_apachebench_keep_alive() -> None:
    ab = need_command("ab")
    with ServerThread(app, lifespan="off", logging_access_log=False) as srv:
        result = subprocess.run([ab, "-k", "-n", "300", "-c", "3", "-q", f"http://127.0.0.1:{srv.port}/"],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"Complete requests:\s+300\b", out), out
    assert re.search(r"Failed requests:\s+0\b", out), out
    assert re.search(r"Keep-Alive requests:\s+300\b", out), out
