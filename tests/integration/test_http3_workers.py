"""HTTP/3 with several workers, and the drain: GOAWAY, streams in flight
finish, the connection closes with H3_NO_ERROR.

With two workers one UDP socket serves both, through the datagram router
(pounce/plugins/http3/router.py): a client that moves to another local port
mid-connection (QUIC connection migration) must keep reaching the worker
that knows its connection, in thread and in process mode.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pounce.testing import ServerProcess, ServerThread, wait_for
from tests.h3client import H3Certs, h3_connect, run, udp_port
from tests.helpers import subprocess_env

pytest.importorskip("aioquic")

H3_NO_ERROR = 0x100
H3_REQUEST_REJECTED = 0x10B


@pytest.fixture
def certs(tmp_path: Path) -> H3Certs:
    return H3Certs(tmp_path)


async def migrating_clients(port: int, certs: H3Certs, clients: int = 8) -> set[tuple[int, int]]:
    """Each client asks who serves it, moves to another local port, and
    asks again: the same worker must answer, seeing the new address."""
    workers: set[tuple[int, int]] = set()
    for _ in range(clients):
        async with h3_connect(port, certs.ca_pem) as client:
            before = json.loads((await client.request("GET", "/")).body)
            await client.migrate()
            after = json.loads((await client.request("GET", "/")).body)
        assert (before["pid"], before["thread"]) == (after["pid"], after["thread"])
        assert before["client"] != after["client"] and after["client"][1] == client.local_port
        assert after["http_version"] == "3"
        workers.add((after["pid"], after["thread"]))
    return workers


def test_two_thread_workers_route_by_connection_id(certs: H3Certs) -> None:
    from h3apps import who

    with ServerThread(who, workers=2, worker_mode="thread", **certs.overrides()) as server:
        workers = run(migrating_clients(udp_port(server), certs, clients=12), timeout=60)
    # Connections spread over both workers (12 clients, 1 in 2**11 to miss one).
    assert len(workers) == 2


@pytest.mark.slow
def test_two_process_workers_route_by_connection_id(certs: H3Certs, tmp_path: Path) -> None:
    args = ["h3apps:who", "--port", "0", "--workers", "2", "--worker-mode", "process", *certs.args()]
    with ServerProcess(args, cwd=tmp_path, env=subprocess_env()) as proc:
        assert any(url.startswith("udp://127.0.0.1:") for url in proc.urls)
        port = int(proc.url.rsplit(":", 1)[1])
        workers = run(migrating_clients(port, certs, clients=12), timeout=60)
        assert len({pid for pid, _ in workers}) == 2
        assert os.getpid() not in {pid for pid, _ in workers}
        assert "listening on udp://127.0.0.1:" in proc.output()


def test_graceful_shutdown_goaway_then_h3_no_error(certs: H3Certs) -> None:
    """Shutdown while a request is in flight: the client gets GOAWAY, a new
    request on the same connection is rejected (so it may retry
    elsewhere), the one in flight completes, then the connection closes
    with H3_NO_ERROR."""
    from h3apps import slow

    server = ServerThread(slow, **certs.overrides()).start()
    port = udp_port(server)

    async def main() -> tuple[Any, Any, Any, list[int]]:
        async with h3_connect(port, certs.ca_pem) as client:
            in_flight = client.open("GET", "/?seconds=1.5", end=True)
            await client.request("GET", "/?seconds=0")  # the first is being served now
            threading.Thread(target=server.server.shutdown, daemon=True).start()
            await asyncio.wait_for(client.protocol.goaway.wait(), 10)
            late = client.open("GET", "/?seconds=0", end=True)
            late_reply = await late.done()
            reply = await in_flight.done()
            deadline = time.monotonic() + 10
            while client.protocol.terminated is None:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            return reply, late_reply, client.protocol.terminated, client.protocol.goaway_ids

    try:
        reply, late, closed, goaway_ids = run(main())
    finally:
        server.stop()
    assert reply.status == 200 and reply.body == b"done"
    assert late.reset_code == H3_REQUEST_REJECTED and late.status is None
    assert goaway_ids == [8]  # streams 0 and 4 were seen: 8 is the first not processed
    assert closed.error_code == H3_NO_ERROR


@pytest.mark.slow
def test_rolling_restart_keeps_http3_serving(certs: H3Certs, tmp_path: Path) -> None:
    """SIGHUP with two process workers: connections to the old workers are
    drained (GOAWAY, H3_NO_ERROR), new connections reach the new ones."""
    args = ["h3apps:who", "--port", "0", "--workers", "2", "--worker-mode", "process", *certs.args()]
    with ServerProcess(args, cwd=tmp_path, env=subprocess_env()) as proc:
        port = int(proc.url.rsplit(":", 1)[1])

        async def main() -> tuple[set[int], set[int], Any]:
            # The router picks a new connection's worker by a hash of the ID the
            # client made up (and a worker may register a moment after the
            # server says it is ready), so six connections can all reach one
            # worker: connect until both have answered, within a deadline.
            old: set[int] = set()
            deadline = time.monotonic() + 30
            while len(old) < 2:
                assert time.monotonic() < deadline, f"only {old} answered"
                async with h3_connect(port, certs.ca_pem) as client:
                    old.add(json.loads((await client.request("GET", "/")).body)["pid"])
            async with h3_connect(port, certs.ca_pem) as held:
                held_pid = json.loads((await held.request("GET", "/")).body)["pid"]
                proc.signal(signal.SIGHUP)
                await asyncio.wait_for(held.protocol.goaway.wait(), 20)
                deadline = time.monotonic() + 20
                while held.protocol.terminated is None:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
                closed = held.protocol.terminated
            new: set[int] = set()
            deadline = time.monotonic() + 30
            while len(new) < 2 and time.monotonic() < deadline:
                async with h3_connect(port, certs.ca_pem) as client:
                    pid = json.loads((await client.request("GET", "/")).body)["pid"]
                    if pid not in old:
                        new.add(pid)
            assert held_pid in old
            return old, new, closed

        old, new, closed = run(main(), timeout=90)
        assert len(new) == 2 and not old & new
        assert closed.error_code == H3_NO_ERROR


RELOAD_APP = '''\
import asyncio
import os

VERSION = "{version}"


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(1.5)
    body = f"{{VERSION}} pid={{os.getpid()}}".encode()
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": body}})
'''


@pytest.mark.slow
def test_reload_keeps_the_udp_socket_and_drains_the_old_server(certs: H3Certs, tmp_path: Path,
                                                               pounce_process: Any) -> None:
    """--reload --http3: the parent keeps the UDP socket and the router; a
    request in flight on the old server finishes while new connections
    reach the new one."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "app.py").write_text(RELOAD_APP.format(version="one"))
    proc = pounce_process("app:app", "--reload", "--reload-dir", str(project), "--port", "0", *certs.args(),
                          cwd=project)
    wait_for(lambda: "is serving" in proc.output(), 20, what=proc.output)
    port = int(proc.url.rsplit(":", 1)[1])

    async def main() -> tuple[bytes, bytes, Any, bytes]:
        async with h3_connect(port, certs.ca_pem) as held:
            first = (await held.request("GET", "/")).body
            in_flight = held.open("GET", "/slow", end=True)
            (project / "app.py").write_text(RELOAD_APP.format(version="two"))
            await asyncio.wait_for(held.protocol.goaway.wait(), 30)
            finished = (await in_flight.done(20)).body
            deadline = time.monotonic() + 20
            while held.protocol.terminated is None:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            closed = held.protocol.terminated
        async with h3_connect(port, certs.ca_pem) as fresh:
            after = (await fresh.request("GET", "/")).body
        return first, finished, closed, after

    first, finished, closed, after = run(main(), timeout=90)
    assert first.startswith(b"one pid=") and finished.startswith(b"one pid=")
    assert after.startswith(b"two pid=") and after.split(b"=")[1] != first.split(b"=")[1]
    assert closed.error_code == H3_NO_ERROR
