"""Faults a production server must survive, on a real pounce with real sockets.

Each test provokes one fault and then checks the server is still whole: it
answers the next request, logged what it should, and nothing leaked onto the
wire. docs/reliability.md lists these cases with the figures they show.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from pounce.testing import LogRecords, wait_for
from tests.helpers import (
    accept_queue,
    connect,
    read_until_closed,
    rst_close,
    send_and_read,
    settled,
    subprocess_env,
)

Scope = dict[str, Any]


def serves_ok(app: Any) -> Any:
    """The app under test, except that ``/ok`` answers "ok" (what
    :func:`still_serves` asks for) and other scopes than http are ignored."""

    async def wrapped(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/ok":
            await send(START)
            await send({"type": "http.response.body", "body": b"ok"})
            return
        await app(scope, receive, send)

    return wrapped


def still_serves(port: int) -> None:
    response = httpx.get(f"http://127.0.0.1:{port}/ok", timeout=5)
    assert response.status_code == 200 and response.text == "ok"


# -- the app sends something invalid ---------------------------------------------------

START = {"type": "http.response.start", "status": 200, "headers": []}
BODY = {"type": "http.response.body", "body": b"INJECTED-BODY"}

INVALID: dict[str, list[dict[str, Any]]] = {
    "body before start": [BODY],
    "start twice": [START, START, BODY],
    "status 99": [{**START, "status": 99}, BODY],
    "status 600": [{**START, "status": 600}, BODY],
    "status as text": [{**START, "status": "200 OK\r\nX-Injected: 1"}, BODY],
    "CR LF in header value": [{**START, "headers": [(b"x-a", b"1\r\nX-Injected: 1")]}, BODY],
    "bare LF in header value": [{**START, "headers": [(b"x-a", b"1\nX-Injected: 1")]}, BODY],
    "bare CR in header value": [{**START, "headers": [(b"x-a", b"1\rX-Injected: 1")]}, BODY],
    "NUL in header value": [{**START, "headers": [(b"x-a", b"1\x00X-Injected")]}, BODY],
    "CR LF in header name": [{**START, "headers": [(b"x-a\r\nX-Injected", b"1")]}, BODY],
    "colon and space in header name": [{**START, "headers": [(b"X-Injected: 1\r\nx", b"1")]}, BODY],
    "empty header name": [{**START, "headers": [(b"", b"X-Injected")]}, BODY],
    "non-latin-1 header value (str)": [{**START, "headers": [(b"x-a", "X-Injected ☃")]}, BODY],
    "non-latin-1 header name (str)": [{**START, "headers": [("X-Injected-☃", b"1")]}, BODY],
    "non-ASCII bytes in header name": [{**START, "headers": [(b"X-Injected-\xe2\x98\x83", b"1")]}, BODY],
    "unknown message type": [{"type": "http.response.nonsense"}, BODY],
    "websocket message on http": [{"type": "websocket.send", "text": "X-Injected"}],
    "trailers without asking": [START, {"type": "http.response.trailers", "headers": []}, BODY],
}


@pytest.mark.parametrize("name", list(INVALID))
def test_invalid_app_messages_are_refused_never_written(serve: Any, errors: LogRecords, name: str) -> None:
    """Whatever the app sends wrong before its response is on the wire, the
    client gets a clean 500 and none of the app's bytes; the error is logged
    and the next request is served."""
    messages = INVALID[name]

    @serves_ok
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        for message in messages:
            await send(message)

    srv = serve(app, lifespan="off", logging_access_log=False)
    data, closed = send_and_read(srv.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 500 "), data[:200]
    assert b"Injected" not in data and b"INJECTED" not in data and b"\xe2\x98\x83" not in data
    assert data.count(b"HTTP/1.1") == 1 and closed
    assert any("error in ASGI app" in m for m in errors.messages()), errors.messages()
    still_serves(srv.port)


def test_invalid_message_after_the_head_is_out_closes_without_writing(serve: Any, errors: LogRecords) -> None:
    """Once the head is on the wire a 500 is impossible: the connection is
    closed, and the invalid message adds nothing to it."""

    @serves_ok
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send(START)
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        await send({**START, "headers": [(b"x-injected", b"1")]})

    srv = serve(app, lifespan="off", logging_access_log=False)
    data, closed = send_and_read(srv.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert closed and data.startswith(b"HTTP/1.1 200 ") and b"part" in data
    assert b"injected" not in data.lower() and data.count(b"HTTP/1.1") == 1
    assert not data.endswith(b"0\r\n\r\n")  # not passed off as a complete response
    still_serves(srv.port)


def test_app_raising_after_start_before_body_gets_500(serve: Any, errors: LogRecords) -> None:
    """pounce holds the head until the first body message, so an app that
    fails between the two still gets a clean 500 (not its 200 head)."""

    @serves_ok
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({**START, "headers": [(b"x-app", b"1")]})
        raise RuntimeError("failed after start")

    srv = serve(app, lifespan="off", logging_access_log=False)
    response = httpx.get(srv.url + "/fail")
    assert response.status_code == 500 and "x-app" not in response.headers
    assert b"failed after start" not in response.content
    assert len(errors.records) == 1 and errors.records[0].exc_info
    still_serves(srv.port)


# -- the client misbehaves ------------------------------------------------------------


def test_client_reset_mid_body(serve: Any, errors: LogRecords) -> None:
    """A client that resets in the middle of its request body: the app gets
    http.disconnect, nothing is logged as an error, the server goes on."""
    seen: list[str] = []
    reading = threading.Event()
    done = threading.Event()

    @serves_ok
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            reading.set()
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                seen.append(message["type"])
                done.set()
                return

    srv = serve(app, lifespan="off", logging_access_log=False)
    for _ in range(20):
        sock = connect(srv.port)
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n" + b"z" * 50000)
        assert reading.wait(5)  # the app has part of the body: the reset comes mid-body
        rst_close(sock)
        assert done.wait(5)
        reading.clear()
        done.clear()
    assert seen == ["http.disconnect"] * 20
    assert errors.records == []
    still_serves(srv.port)


def pid_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_client_that_never_reads_the_response_bounds_memory(pounce_process: Any) -> None:
    """Write backpressure: an app streaming 256 MiB to a client that never
    reads is held at send() once the socket buffers are full, so the
    server's memory stays flat; when the client goes, the app is released."""
    srv = pounce_process("reliabilityapps:app", "--port", "0", "--no-access-log")
    pid = srv.proc.pid
    rss_before = pid_rss_kib(pid)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", srv.port))
    sock.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")

    def sent() -> int:
        return int(httpx.get(srv.url + "/progress").text)

    wait_for(sent, what="/big to start sending")
    # Stalled: send() takes nothing more for a whole second while the client
    # does not read, and what it took is socket-buffer sized, not 256 MiB.
    progress = settled(sent, quiet=1.0, interval=0.2)
    rss_stalled = pid_rss_kib(pid)
    assert progress < 32 * 1024 * 1024, progress
    assert rss_stalled - rss_before < 40 * 1024, (rss_before, rss_stalled)
    rst_close(sock)
    assert httpx.get(srv.url + "/hello").text == "ok"
    srv.signal(signal.SIGTERM)
    assert srv.wait(15) == 0
    assert "Traceback" not in srv.output()


# -- the server's own limits -------------------------------------------------------------


@pytest.mark.slow
def test_full_accept_backlog_loses_no_connection(pounce_process: Any) -> None:
    """The server is frozen (SIGSTOP) with a backlog of 4 while 40 clients
    connect and send a request: the queue overflows, the kernel drops the
    extra SYNs, clients retry; once the server runs again every request is
    answered, nothing is logged as an error."""
    srv = pounce_process("reliabilityapps:app", "--port", "0", "--backlog", "4", "--no-access-log")
    port = srv.port
    results: list[Any] = []

    def client() -> None:
        try:
            data, _ = send_and_read(port, b"GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", timeout=20)
            results.append(data.split(b"\r\n", 1)[0])
        except OSError as exc:
            results.append(exc)

    srv.signal(signal.SIGSTOP)
    try:
        threads = [threading.Thread(target=client, daemon=True) for _ in range(40)]
        for t in threads:
            t.start()
        # The accept queue really fills up (the kernel queues backlog + 1).
        wait_for(lambda: accept_queue(port) >= 4, what="the accept queue to fill")
        assert results == []  # nobody answered while frozen
    finally:
        srv.signal(signal.SIGCONT)
    for t in threads:
        t.join(30)
    assert results == [b"HTTP/1.1 200 OK"] * 40, results
    srv.signal(signal.SIGTERM)
    assert srv.wait(15) == 0
    assert "ERROR" not in srv.output() and "Traceback" not in srv.output()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.slow
def test_file_descriptor_exhaustion_sheds_and_recovers(tmp_path: Path) -> None:
    """``ulimit -n 64``: 100 idle connections exhaust the server's
    descriptors. The server logs it, keeps serving the connections it has,
    does not spin, and accepts again as soon as descriptors are free."""
    limit = 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < limit:
        pytest.skip("hard descriptor limit too low")
    cmd = (f"ulimit -n {limit}; exec {sys.executable} -m pounce reliabilityapps:app --port 0 "
           "--no-access-log --timeout-request-header 60 --timeout-keep-alive 60")
    # Not ServerProcess: the shell has to lower the limit before exec'ing pounce.
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["bash", "-c", cmd], cwd=tmp_path, env=subprocess_env(), stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    held: list[socket.socket] = []

    def output() -> str:
        return log.read_text(errors="replace")

    def banner() -> str:
        text = output()
        assert proc.poll() is None, text
        return text if "plugins:" in text else ""

    try:
        port = int(wait_for(banner, 20, what=output).split("listening on http://127.0.0.1:", 1)[1].split()[0])
        first = connect(port)
        first.sendall(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
        assert first.recv(1024).startswith(b"HTTP/1.1 200")
        held.append(first)
        for _ in range(100):
            held.append(connect(port))
        wait_for(lambda: "Too many open files" in output() or "out of system resource" in output(),
                 what=lambda: "the exhaustion to be logged:\n" + output())
        # Not spinning: well under half a core while exhausted (the 2 s are
        # the measuring window, not a wait for something to happen).
        cpu0 = cpu_seconds(proc.pid)
        time.sleep(2.0)
        busy = cpu_seconds(proc.pid) - cpu0
        assert busy < 1.0, f"{busy:.2f} s of CPU in 2 s while out of descriptors"
        # The connections it already has are served.
        first.sendall(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
        assert first.recv(1024).startswith(b"HTTP/1.1 200")
        # Free descriptors: the backlog drains and new clients are served.
        for sock in held:
            sock.close()
        held.clear()

        def served() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/hello", timeout=3).text == "ok"
            except httpx.HTTPError:
                return False

        wait_for(served, 10, interval=0.2, what="recovery after descriptors were freed")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert "Traceback" not in output()
    finally:
        for sock in held:
            sock.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


# -- graceful shutdown under load ----------------------------------------------------------


MODES = {
    "single": (),
    "process-workers": ("--workers", "2", "--worker-mode", "process"),
    "thread-workers": ("--workers", "2", "--worker-mode", "thread"),
}


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(MODES))
def test_sigterm_under_load_drains_idle_refuses_new_and_finishes_in_flight(pounce_process: Any, mode: str) -> None:
    srv = pounce_process("reliabilityapps:app", "--port", "0", "--no-access-log",
                         "--timeout-keep-alive", "60", *MODES[mode])
    if mode != "single":
        wait_for(lambda: "serving with 2" in srv.output(), 20, what=srv.output)
    port = srv.port
    idle = connect(port)
    idle.sendall(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
    assert idle.recv(1024).startswith(b"HTTP/1.1 200")
    busy = [connect(port, timeout=15) for _ in range(8)]
    for sock in busy:
        sock.sendall(b"GET /slow?2 HTTP/1.1\r\nHost: a\r\n\r\n")
    # Steady load from a few clients until the server goes.
    stop = threading.Event()
    load_results: list[Any] = []

    def load() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                try:
                    load_results.append(client.get(srv.url + "/hello").status_code)
                except httpx.HTTPError as exc:
                    load_results.append(type(exc).__name__)
                    return

    loaders = [threading.Thread(target=load, daemon=True) for _ in range(3)]
    for t in loaders:
        t.start()
    # (Enough answers before the signal that the count below does not
    # depend on how fast a loaded machine runs the loaders.)
    wait_for(lambda: len(load_results) >= 12, what="the load to get going")
    signalled = time.monotonic()
    srv.signal(signal.SIGTERM)
    # The idle keep-alive connection is closed at once, not after the drain.
    data, closed = read_until_closed(idle, timeout=1.0)
    assert closed and data == b"", "idle keep-alive connection not closed at once"
    assert time.monotonic() - signalled < 1.0
    # New connections during the drain are refused (or answered 503).
    try:
        late = connect(port, timeout=2)
        late.sendall(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
        answer, _ = read_until_closed(late, timeout=3)
        late.close()
        assert answer == b"" or answer.startswith(b"HTTP/1.1 503"), answer[:100]
    except ConnectionRefusedError:
        pass
    # Every in-flight request finishes, with Connection: close.
    for sock in busy:
        data, closed = read_until_closed(sock, timeout=10)
        sock.close()
        assert data.startswith(b"HTTP/1.1 200") and b"connection: close" in data.lower() and closed
    stop.set()
    for t in loaders:
        t.join(10)
    assert srv.wait(15) == 0
    ok = [r for r in load_results if r == 200]
    assert len(ok) > 10 and all(r in (200, "ConnectError", "RemoteProtocolError", "ReadError")
                                for r in load_results), load_results[-5:]
    assert "Traceback" not in srv.output()


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(MODES))
def test_exit_within_graceful_timeout_when_the_app_hangs(pounce_process: Any, mode: str) -> None:
    srv = pounce_process("reliabilityapps:app", "--port", "0", "--no-access-log",
                         "--timeout-graceful-shutdown", "1", *MODES[mode])
    if mode != "single":
        wait_for(lambda: "serving with 2" in srv.output(), 20, what=srv.output)
    hung = [connect(srv.port, timeout=10) for _ in range(3)]
    for sock in hung:
        sock.sendall(b"GET /hang HTTP/1.1\r\nHost: a\r\n\r\n")
    # All three are inside the app (it says so on stdout) before the signal.
    wait_for(lambda: srv.output().count("hanging on /hang") == 3, what=srv.output)
    started = time.monotonic()
    srv.signal(signal.SIGTERM)
    code = srv.wait(10)
    took = time.monotonic() - started
    assert code == 0 and took < 3.0, (code, took)
    for sock in hung:
        data, closed = read_until_closed(sock, timeout=2)
        sock.close()
        assert closed


# -- an app that never answers ---------------------------------------------------------------


@pytest.mark.slow
def test_timeout_request_504_or_close_and_the_app_is_cancelled(serve: Any, errors: LogRecords) -> None:
    """``[http] timeout_request``: no head out yet → 504 and close; head out
    but response unfinished → close (no final chunk); either way the app's
    task is cancelled. A request answered in time is untouched, and an idle
    keep-alive connection outliving the timeout is not hit by it."""
    cancelled: list[str] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        import asyncio

        path = scope["path"]
        try:
            if path == "/partial":
                await send(START)
                await send({"type": "http.response.body", "body": b"partial", "more_body": True})
            if path in ("/hang", "/partial"):
                await asyncio.Event().wait()
            await send(START)
            await send({"type": "http.response.body", "body": b"ok"})
        except asyncio.CancelledError:
            cancelled.append(path)
            raise

    srv = serve(app, lifespan="off", logging_access_log=False, http_timeout_request=0.5)
    started = time.monotonic()
    data, closed = send_and_read(srv.port, b"GET /hang HTTP/1.1\r\nHost: a\r\n\r\n")
    took = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 504 ") and b"connection: close" in data.lower() and closed
    assert 0.4 < took < 3.0, took
    # The same through h11 (a chunked body never takes the fast path).
    data, closed = send_and_read(
        srv.port, b"POST /hang HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 504 ") and closed

    data, closed = send_and_read(srv.port, b"GET /partial HTTP/1.1\r\nHost: a\r\n\r\n")
    assert closed and data.startswith(b"HTTP/1.1 200 ") and b"partial" in data
    assert not data.endswith(b"0\r\n\r\n") and b"504" not in data

    sock = connect(srv.port)
    sock.sendall(b"GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
    assert sock.recv(1024).startswith(b"HTTP/1.1 200")
    time.sleep(0.8)  # the behaviour under test: idle longer than timeout_request, still usable
    sock.sendall(b"GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
    assert sock.recv(1024).startswith(b"HTTP/1.1 200")
    sock.close()
    wait_for(lambda: len(cancelled) >= 3, 3, what=lambda: f"three cancelled app tasks, got {cancelled}")
    assert sorted(cancelled) == ["/hang", "/hang", "/partial"]
    assert errors.records == []  # a timeout is a warning, not an error


@pytest.mark.slow
def test_timeout_request_flag(pounce_process: Any) -> None:
    srv = pounce_process("reliabilityapps:app", "--port", "0", "--timeout-request", "0.5")
    response = httpx.get(srv.url + "/hang", timeout=10)
    assert response.status_code == 504 and response.headers["connection"] == "close"
    assert httpx.get(srv.url + "/hello").text == "ok"
    assert "timed out" in srv.output()
