"""Responses held for the end of a loop turn (pounce.core.transport.turn):
many connections served in one turn each get their whole response, in
order, with ``Connection: close`` still closing after it."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from typing import Any

import pytest

from tests.helpers import connect, read_until, read_until_closed

LOOPS = [
    "asyncio",
    pytest.param("uvloop", marks=pytest.mark.skipif(importlib.util.find_spec("uvloop") is None,
                                                    reason="uvloop is not installed")),
]


STREAM_PIECES = 40


def stream_body(path: str) -> bytes:
    return b"".join((b"%s:%04d;" % (path.encode(), i)) * 2000 for i in range(STREAM_PIECES)) + b"end"


def make_app(entered: threading.Event, gate: threading.Event) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/block":
            # The loop stands still here (on purpose): the other clients'
            # requests pile up, to be read in one turn once it goes on.
            entered.set()
            gate.wait(10)
        if scope["path"].startswith("/stream"):
            # Pieces that say where they belong: a reordered or lost one shows.
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            for i in range(STREAM_PIECES):
                piece = (b"%s:%04d;" % (scope["path"].encode(), i)) * 2000
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b"end"})
            return
        body = f"answer to {scope['path']}".encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})

    return app


def get(path: str, close: bool = False) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n".encode()


@pytest.mark.parametrize("loop", LOOPS)
def test_many_connections_in_one_turn_get_whole_responses_in_order(serve: Any, loop: str) -> None:
    entered, gate = threading.Event(), threading.Event()
    srv = serve(make_app(entered, gate), lifespan="off", loop=loop)
    address = ("127.0.0.1", srv.port)
    blocker = connect(address)
    clients: list[tuple[str, Any]] = []
    try:
        blocker.sendall(get("/block", close=True))
        assert entered.wait(10), "the blocking request never reached the app"
        for i in range(30):
            sock = connect(address)
            kind = ("keep", "close", "pipelined")[i % 3]
            if kind == "keep":
                sock.sendall(get(f"/keep{i}"))
            elif kind == "close":
                sock.sendall(get(f"/close{i}", close=True))
            else:
                sock.sendall(get(f"/first{i}") + get(f"/second{i}", close=True))
            clients.append((kind, sock))
        gate.set()
        data, closed = read_until_closed(blocker, 10)
        assert closed and data.endswith(b"answer to /block")
        for i, (kind, sock) in enumerate(clients):
            if kind == "keep":
                data = read_until(sock, f"answer to /keep{i}".encode(), 10)
                assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.count(b"HTTP/1.1") == 1
                # Still open and serving: a second request on it.
                sock.sendall(get(f"/again{i}", close=True))
                data, closed = read_until_closed(sock, 10)
                assert closed and data.endswith(f"answer to /again{i}".encode())
            elif kind == "close":
                data, closed = read_until_closed(sock, 10)
                assert closed and data.startswith(b"HTTP/1.1 200 OK\r\n")
                assert data.endswith(f"answer to /close{i}".encode())
            else:
                data, closed = read_until_closed(sock, 10)
                assert closed and data.count(b"HTTP/1.1 200 OK\r\n") == 2
                first = data.index(f"answer to /first{i}".encode())
                assert first < data.index(f"answer to /second{i}".encode())
                assert data.endswith(f"answer to /second{i}".encode())
    finally:
        gate.set()
        blocker.close()
        for _, sock in clients:
            sock.close()


@pytest.mark.parametrize("loop", LOOPS)
def test_streams_of_one_turn_arrive_whole(serve: Any, loop: str) -> None:
    """Streamed responses (pieces held up to a limit, chunked framing)
    to many connections at once, a slow reader among them."""
    entered, gate = threading.Event(), threading.Event()
    srv = serve(make_app(entered, gate), lifespan="off", loop=loop)
    address = ("127.0.0.1", srv.port)
    blocker = connect(address)
    clients = []
    try:
        blocker.sendall(get("/block", close=True))
        assert entered.wait(10), "the blocking request never reached the app"
        for i in range(12):
            sock = connect(address)
            sock.sendall(get(f"/stream{i}", close=True))
            clients.append(sock)
        gate.set()
        read_until_closed(blocker, 10)
        for i, sock in enumerate(clients):
            data, closed = read_until_closed(sock, 20)
            head, _, chunked = data.partition(b"\r\n\r\n")
            assert closed and b"transfer-encoding: chunked" in head.lower()
            assert dechunk(chunked) == stream_body(f"/stream{i}")
    finally:
        gate.set()
        blocker.close()
        for sock in clients:
            sock.close()


def dechunk(data: bytes) -> bytes:
    out = []
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return b"".join(out)
        out.append(data[:size])
        data = data[size + 2:]


def test_a_lone_request_is_written_in_its_own_turn() -> None:
    """No other callback waiting: nothing to wait for (no added latency)."""
    from pounce.core.asgi.eager import TaskStarter
    from pounce.core.transport.turn import TurnWriter

    loop = asyncio.new_event_loop()
    try:
        writer = TurnWriter(loop, set(), TaskStarter(loop))
        seen: list[bool] = []

        def look(stop: bool) -> None:
            seen.append(writer.alone())
            if stop:
                loop.stop()

        loop.call_soon(look, True)
        loop.run_forever()
        # Two callbacks in one turn: the first has company, the last does not.
        loop.call_soon(look, False)
        loop.call_soon(look, True)
        loop.run_forever()
    finally:
        loop.close()
    assert seen[0] is True
    assert seen[1] is False and seen[2] is True


def test_request_tasks_started_in_one_batch_have_company_but_the_last() -> None:
    """The first steps of the turn's request tasks run from one handle: the
    queue is empty meanwhile, yet the others are still to be served."""
    from pounce.core.asgi.eager import TaskStarter
    from pounce.core.transport.turn import TurnWriter

    loop = asyncio.new_event_loop()
    try:
        tasks = TaskStarter(loop)
        writer = TurnWriter(loop, set(), tasks)
        seen: list[bool] = []
        done = loop.create_future()

        async def app() -> None:
            seen.append(writer.alone())
            if len(seen) == 3:
                done.set_result(None)

        for _ in range(3):
            tasks.schedule(app())
        backstop = loop.call_later(5, done.cancel)  # (a timer: not on the ready queue)
        loop.run_until_complete(done)
        backstop.cancel()
    finally:
        loop.close()
    assert seen == [False, False, True]
