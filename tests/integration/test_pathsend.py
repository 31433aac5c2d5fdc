"""``http.response.pathsend``: a file sent by the core, with ``sendfile(2)``
on plain TCP and a copy loop under TLS, driven by real Starlette responses.

The worker counts the bytes that went each way (``sendfile_bytes``,
``copied_file_bytes``), which is how these tests tell the kernel's path from
the copy without strace.
"""

from __future__ import annotations

import os
import socket
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pounce import hookimpl
from pounce.testing import ServerThread

BIG = os.urandom(3 * 1024 * 1024 + 7)


class Workers:
    """Keeps each worker, to read its file counters."""

    def __init__(self) -> None:
        self.started: list[Any] = []

    @hookimpl
    def pounce_worker_started(self, worker: Any) -> None:
        self.started.append(worker)

    @property
    def ctx(self) -> Any:
        return self.started[0].ctx


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "big.bin").write_bytes(BIG)
    (tmp_path / "small.txt").write_text("hello, file\n")
    return tmp_path


def starlette_app(folder: Path) -> Any:
    async def file_response(request: Any) -> FileResponse:
        return FileResponse(folder / "big.bin")

    return Starlette(routes=[Route("/file", file_response), Mount("/static", StaticFiles(directory=folder))])


def serve(folder: Path, workers: Workers, **overrides: Any) -> ServerThread:
    return ServerThread(starlette_app(folder), plugins=[workers], lifespan="off",
                        logging_access_log=False, **overrides)


def test_file_response_and_static_files_go_through_sendfile(files: Path) -> None:
    workers = Workers()
    with serve(files, workers) as srv, httpx.Client(base_url=srv.url) as client:
        assert "http.response.pathsend" in _scope_extensions(srv)
        whole = client.get("/file")
        static = client.get("/static/big.bin")
        small = client.get("/static/small.txt")
        head = client.head("/file")
    assert whole.status_code == 200 and whole.content == BIG
    assert whole.headers["content-length"] == str(len(BIG))
    assert static.content == BIG and small.content == b"hello, file\n"
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(BIG))
    # Three bodies by the kernel, HEAD none; nothing copied through Python.
    assert workers.ctx.sendfile_bytes == 2 * len(BIG) + len(b"hello, file\n")
    assert workers.ctx.copied_file_bytes == 0


def test_under_tls_the_file_is_copied(files: Path, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(cert_file)
    cert.private_key_pem.write_to_path(key_file)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    workers = Workers()
    with serve(files, workers, tls_certfile=str(cert_file), tls_keyfile=str(key_file)) as srv, \
            httpx.Client(base_url=srv.url, verify=context) as client:
        response = client.get("/file")
    assert response.content == BIG
    assert workers.ctx.copied_file_bytes == len(BIG) and workers.ctx.sendfile_bytes == 0


def test_keep_alive_after_a_file_and_the_next_request_is_served(files: Path) -> None:
    workers = Workers()
    with serve(files, workers) as srv, socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(b"GET /static/small.txt HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
        data = b""
        while data.count(b"hello, file\n") < 2:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 2


@pytest.mark.slow
def test_client_gone_mid_file_closes_the_file_and_the_worker_serves_on(files: Path) -> None:
    big = files / "huge.bin"
    big.write_bytes(os.urandom(64 * 1024 * 1024))

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": str(big)})

    with ServerThread(app, lifespan="off", logging_access_log=False) as srv:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
            # Closed with most of the file unsent.
        assert httpx.get(srv.url + "/", headers={"range": "bytes=0-0"}, timeout=30).status_code == 200
        _wait_until_closed(big)


def _wait_until_closed(path: Path, timeout: float = 10.0) -> None:
    """Every descriptor this process has on ``path`` is closed (bounded)."""
    import time

    target = str(path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        open_now = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                open_now.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                continue
        if target not in open_now:
            return
        time.sleep(0.05)
    raise AssertionError(f"{target} is still open")


@pytest.mark.parametrize(("message", "detail"), [
    ({"path": "/nonexistent/file"}, "cannot open"),
    ({"path": "BIG", "count": 10 ** 9}, "bytes"),
    ({"path": "BIG", "headers": [(b"content-length", b"5")]}, "Content-Length"),
])
def test_a_bad_pathsend_is_a_500_and_logged(files: Path, message: dict[str, Any], detail: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    path = str(files / "big.bin") if message["path"] == "BIG" else message["path"]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": message.get("headers", [])})
        await send({"type": "http.response.pathsend", "path": path,
                    **({"count": message["count"]} if "count" in message else {})})

    with ServerThread(app, lifespan="off", logging_access_log=False) as srv:
        response = httpx.get(srv.url + "/")
    assert response.status_code == 500
    assert any(detail in record.getMessage() or detail in str(record.exc_info[1] if record.exc_info else "")
               for record in caplog.records)


def test_a_byte_range_by_offset_and_count(files: Path) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        assert scope["extensions"]["http.response.pathsend"] == {"ranges": True}
        await send({"type": "http.response.start", "status": 206, "headers": []})
        await send({"type": "http.response.pathsend", "path": str(files / "big.bin"), "offset": 1000,
                    "count": 5000})

    with ServerThread(app, lifespan="off", logging_access_log=False) as srv:
        response = httpx.get(srv.url + "/")
    assert response.status_code == 206 and response.content == BIG[1000:6000]


def _scope_extensions(srv: ServerThread) -> dict[str, Any]:
    """The extensions of a scope the server builds, asked of a probe app."""
    seen: dict[str, Any] = {}

    async def probe(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.update(scope["extensions"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with ServerThread(probe, lifespan="off", logging_access_log=False) as other:
        httpx.get(other.url + "/")
    return seen


def test_the_static_plugin_sends_files_and_ranges_through_sendfile(files: Path) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise AssertionError("the static mount answers first")

    workers = Workers()
    with ServerThread(app, plugins=[workers], lifespan="off", logging_access_log=False,
                      static_mounts={"/s": str(files)}) as srv, httpx.Client(base_url=srv.url) as client:
        whole = client.get("/s/big.bin")
        part = client.get("/s/big.bin", headers={"range": "bytes=100-199999"})
    assert whole.content == BIG
    assert part.status_code == 206 and part.content == BIG[100:200000]
    assert workers.ctx.sendfile_bytes == len(BIG) + 199900
