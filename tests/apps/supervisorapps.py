"""Apps and the load generator for the supervisor tests (no tests here).

Importable as ``supervisorapps:NAME`` in server subprocesses (the tests
put this directory on PYTHONPATH). Run as a script it is the load generator:
``python supervisorapps.py URL SECONDS CONCURRENCY PATH`` sends
requests on fresh connections from CONCURRENCY threads for SECONDS and prints
one JSON line per request: start and end (wall clock), ok, and the body or
the error.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

STARTUPS = 0
REQUESTS = 0  # HTTP requests this process's app has begun (in-process tests wait on it)


async def _text(send: Any, body: str, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body.encode()})


def where() -> str:
    """Who runs this code: the pid, and in a subinterpreter ``PID/ID`` with
    the interpreter's id (one per interpreter worker)."""
    try:
        from concurrent import interpreters  # type: ignore[import-not-found]
    except ImportError:
        return str(os.getpid())
    current = interpreters.get_current()
    if current.id == interpreters.get_main().id:
        return str(os.getpid())
    return f"{os.getpid()}/{current.id}"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/`` answers ``WHERE WORKER LIFESPAN_WHERE STARTUPS`` (see ``where``);
    ``?sleep=S`` waits first (async); ``/block?S`` blocks the event loop for S
    seconds; ``/hold?S`` says so on stdout, then waits S seconds (for a test
    that needs a request in flight in a worker process); ``/die`` stops the
    worker's event loop under it (a worker crash)."""
    global STARTUPS, REQUESTS
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                STARTUPS += 1
                scope["state"]["pid"] = where()
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    REQUESTS += 1
    query = scope["query_string"].decode()
    if scope["path"] == "/block":
        time.sleep(float(query or 5))
    elif scope["path"] == "/hold":
        print(f"holding a request for {query}s", flush=True)
        await asyncio.sleep(float(query or 30))
    elif scope["path"] == "/die":
        asyncio.get_running_loop().stop()
    elif query.startswith("sleep="):
        await asyncio.sleep(float(query[6:]))
    state = scope.get("state", {})
    name = threading.current_thread().name
    await _text(send, f"{where()} {name} {state.get('pid', '-')} {STARTUPS}")


def _in_worker_process() -> bool:
    """True inside a supervisor's worker process (its command line ends in
    ``pounce-worker-N``), False in the process that runs the supervisor."""
    return len(sys.argv) > 1 and sys.argv[1].startswith("pounce-worker-")


def crash_in_workers() -> Any:
    """A factory that raises in every worker process: a deploy whose workers
    cannot start (the supervisor itself may import the app or not)."""
    if _in_worker_process():
        raise RuntimeError("cannot connect to the database (test)")
    return app


def crash_after() -> Any:
    """A factory that works in the first SUPERVISOR_TEST_LIMIT worker
    processes and raises in every later one: a deploy that broke."""
    if not _in_worker_process():
        return app
    marker = Path(os.environ["SUPERVISOR_TEST_MARKER"])
    with marker.open("ab") as f:
        f.write(b"x")
    if marker.stat().st_size > int(os.environ["SUPERVISOR_TEST_LIMIT"]):
        raise RuntimeError("new code cannot start (test)")
    return app


# -- load generator ---------------------------------------------------------------


def _one(host: str, port: int, path: str) -> tuple[bool, str]:
    try:
        with socket.create_connection((host, port), timeout=15) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        return False, f"{type(exc).__name__}: {exc}"
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        return False, "bad response: " + head[:60].decode("latin-1")
    return True, body.decode("latin-1")


def loadgen(url: str, seconds: float, concurrency: int, path: str) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    deadline = time.time() + seconds
    lock = threading.Lock()

    def run() -> None:
        while time.time() < deadline:
            start = time.time()
            ok, info = _one(host, port, path)
            line = json.dumps({"start": start, "end": time.time(), "ok": ok, "info": info})
            with lock:
                sys.stdout.write(line + "\n")
            if not ok:
                time.sleep(0.01)

    threads = [threading.Thread(target=run) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sys.stdout.flush()


if __name__ == "__main__":
    loadgen(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4])


# -- helpers for the tests ----------------------------------------------------------


class Load:
    """The load generator running in its own process for ``seconds``."""

    def __init__(self, url: str, seconds: float = 3.0, concurrency: int = 4, path: str = "/?sleep=0.02") -> None:
        import subprocess

        self.concurrency = concurrency
        self.proc = subprocess.Popen(
            [sys.executable, __file__, url, str(seconds), str(concurrency), path],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )
        self.results: list[dict[str, Any]] = []

    def finish(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, err.decode()
        self.results = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        return self.results

    def errors(self) -> list[dict[str, Any]]:
        return [r for r in self.results if not r["ok"]]

    def pids(self, after: float = 0.0) -> set[str]:
        return {r["info"].split()[0] for r in self.results if r["ok"] and r["start"] >= after}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
