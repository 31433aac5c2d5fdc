"""Bounded soak: a few million mixed requests against one pounce, watching for leaks.

Not a test and not part of CI (``tests/reliability/test_soak.py`` runs a
short version of it). It starts ``pounce soak:app`` as a subprocess and
drives it from several client processes with a weighted mix of:

- ``hello``: pipelined bursts of GET requests on keep-alive connections;
- ``stream``: a chunked response of several chunks, every byte checked;
- ``post``: a body (fixed length or chunked) echoed back as length + CRC-32;
- ``ws``: a WebSocket session of a few echoed messages, closed cleanly;
- ``abort_request``: a client that sends part of a request head or body and
  goes away (FIN or RST);
- ``abort_response``: a client that reads part of a long streamed response
  and goes away (FIN or RST).

Every response is checked byte for byte; any mismatch or client-side error
counts as an error. While it runs, the server's RSS and open file
descriptors are sampled from ``/proc`` once a second. At the end the clients
stop, the server is given a moment to close what they left, then gets
SIGTERM; its log is scanned for errors and tracebacks.

Verdict (exit status 0 only when all hold): no client-side error, every
response correct, no ERROR/Traceback and no WARNING in the server log (a
warning there has always meant a bug: e.g. writes to a dead socket), a clean exit 0,
RSS after warm-up grows by less than ``--rss-slack`` MiB to the end, and the
descriptor count once idle is back to what it was before the load.

    .venv/bin/python benchmarks/soak.py --duration 600 --clients 2
    .venv/bin/python benchmarks/soak.py --requests 2000000 --json out.json

Why these checks: a leak shows as RSS still climbing after warm-up or as
descriptors that outlive their connections; a bug shows as a wrong byte, an
error line or a non-zero exit. Throughput is reported but is not the point.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# -- the app ------------------------------------------------------------------

HELLO = b"Hello, soak!"


def stream_chunk(i: int) -> bytes:
    """Chunk ``i`` of a streamed response: 1 KiB, different for each i."""
    return (b"%06d" % i) * 170 + b"\n\n\n\n"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The soak app: /hello, /stream?n, /echo (POST), /ws (WebSocket echo)."""
    kind = scope["type"]
    if kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if kind == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await send({"type": "websocket.send", "bytes": message["bytes"]})
            else:
                await send({"type": "websocket.send", "text": message["text"]})
    path = scope["path"]
    if path == "/hello":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": HELLO})
    elif path == "/stream":
        n = int(scope["query_string"] or b"4")
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        for i in range(n):
            await send({"type": "http.response.body", "body": stream_chunk(i), "more_body": True})
            if i % 8 == 7:
                await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b""})
    elif path == "/echo":
        crc = 0
        length = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            crc = zlib.crc32(body, crc)
            length += len(body)
            more = message.get("more_body", False)
        payload = b"%d %d" % (length, crc)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": payload})
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"not found"})


# -- a minimal, strict HTTP/1.1 client ------------------------------------------


class SoakError(Exception):
    """A wrong or missing response."""


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    status_line = lines[0].split(b" ", 2)
    if status_line[0] != b"HTTP/1.1":
        raise SoakError(f"bad status line {lines[0]!r}")
    status = int(status_line[1])
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding") == b"chunked":
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                if await reader.readuntil(b"\r\n") != b"\r\n":
                    raise SoakError("trailers not expected")
                break
            parts.append(await reader.readexactly(size))
            if await reader.readexactly(2) != b"\r\n":
                raise SoakError("bad chunk end")
        body = b"".join(parts)
    else:
        raise SoakError(f"response without framing: {headers!r}")
    return status, headers, body


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise SoakError(what)


def rst_close(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0) instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


class Client:
    """One client coroutine's state and counters."""

    def __init__(self, host: str, port: int, rng: random.Random, counts: dict[str, int]) -> None:
        self.host = host
        self.port = port
        self.rng = rng
        self.counts = counts

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port, limit=1 << 20)

    async def hello_burst(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = self.rng.randint(1, 16)
        writer.write(b"GET /hello HTTP/1.1\r\nHost: soak\r\n\r\n" * n)
        for _ in range(n):
            status, _, body = await read_response(reader)
            expect(status == 200 and body == HELLO, f"hello: {status} {body[:40]!r}")
        self.counts["hello"] += n

    async def stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = self.rng.randint(1, 32)
        writer.write(b"GET /stream?%d HTTP/1.1\r\nHost: soak\r\n\r\n" % n)
        status, headers, body = await read_response(reader)
        expected = b"".join(stream_chunk(i) for i in range(n))
        expect(status == 200 and body == expected, f"stream: {status} {len(body)} bytes, wanted {len(expected)}")
        self.counts["stream"] += 1

    async def post(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = self.rng.choice((0, 1, 100, 4096, 70_000, 300_000))
        body = self.rng.randbytes(size)
        if self.rng.random() < 0.5:
            writer.write(b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: %d\r\n\r\n" % size + body)
        else:
            pieces = [body[i:i + 8192] for i in range(0, size, 8192)]
            out = [b"POST /echo HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\n"]
            out += [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces]
            out.append(b"0\r\n\r\n")
            writer.write(b"".join(out))
        status, _, answer = await read_response(reader)
        expect(status == 200 and answer == b"%d %d" % (size, zlib.crc32(body)), f"echo: {status} {answer!r}")
        self.counts["post"] += 1

    async def keep_alive_session(self) -> None:
        reader, writer = await self.connect()
        try:
            for _ in range(self.rng.randint(1, 20)):
                pick = self.rng.random()
                if pick < 0.75:
                    await self.hello_burst(reader, writer)
                elif pick < 0.87:
                    await self.stream(reader, writer)
                else:
                    await self.post(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def websocket(self) -> None:
        import wsproto
        from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Request, TextMessage

        reader, writer = await self.connect()
        ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        try:
            writer.write(ws.send(Request(host="soak", target="/ws")))
            accepted = False
            while not accepted:
                data = await reader.read(65536)
                expect(bool(data), "ws: closed during handshake")
                ws.receive_data(data)
                for event in ws.events():
                    expect(isinstance(event, AcceptConnection), f"ws handshake: {event!r}")
                    accepted = True
            for i in range(self.rng.randint(1, 10)):
                if i % 2:
                    sent: Any = self.rng.randbytes(self.rng.choice((1, 200, 5000)))
                    writer.write(ws.send(BytesMessage(data=sent)))
                else:
                    sent = f"soak ✓ {self.rng.randint(0, 10**9)}"
                    writer.write(ws.send(TextMessage(data=sent)))
                got: Any = None
                while got is None:
                    data = await reader.read(65536)
                    expect(bool(data), "ws: closed mid-session")
                    ws.receive_data(data)
                    for event in ws.events():
                        if isinstance(event, (BytesMessage, TextMessage)):
                            expect(event.message_finished, "ws: fragment")
                            got = event.data
                        else:
                            raise SoakError(f"ws: unexpected {event!r}")
                expect(got == sent, "ws: echo differs")
                self.counts["ws_messages"] += 1
            writer.write(ws.send(CloseConnection(code=1000)))
            closed = False
            while not closed:
                data = await reader.read(65536)
                if not data:
                    break
                ws.receive_data(data)
                for event in ws.events():
                    if isinstance(event, CloseConnection):
                        expect(event.code == 1000, f"ws close code {event.code}")
                        closed = True
            expect(closed, "ws: no close frame back")
            self.counts["ws_sessions"] += 1
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def abort_request(self) -> None:
        """Send part of a request and vanish (FIN or RST)."""
        reader, writer = await self.connect()
        head = b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 100000\r\n\r\n"
        if self.rng.random() < 0.5:
            writer.write(head[: self.rng.randint(1, len(head) - 1)])
        else:
            writer.write(head + self.rng.randbytes(self.rng.randint(1, 60_000)))
        await asyncio.sleep(self.rng.random() * 0.005)
        if self.rng.random() < 0.5:
            rst_close(writer)
        else:
            writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        self.counts["abort_request"] += 1

    async def abort_response(self) -> None:
        """Ask for a long streamed response, read some of it, vanish."""
        reader, writer = await self.connect()
        writer.write(b"GET /stream?2000 HTTP/1.1\r\nHost: soak\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(self.rng.randint(1, 50_000))
        if self.rng.random() < 0.5:
            rst_close(writer)
        else:
            writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        self.counts["abort_response"] += 1

    async def run(self, stop_at: float, budget: list[int]) -> None:
        while time.monotonic() < stop_at and budget[0] > 0:
            pick = self.rng.random()
            try:
                if pick < 0.80:
                    await self.keep_alive_session()
                elif pick < 0.88:
                    await self.websocket()
                elif pick < 0.94:
                    await self.abort_request()
                else:
                    await self.abort_response()
            except (SoakError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    ValueError) as exc:
                self.counts["errors"] += 1
                if len(self.counts.setdefault("_samples", [])) < 5:  # type: ignore[arg-type]
                    self.counts["_samples"].append(f"{type(exc).__name__}: {exc}")  # type: ignore[attr-defined]
            budget[0] = self.counts["budget"] - requests_of(self.counts)


def requests_of(counts: dict[str, Any]) -> int:
    """Requests (and WebSocket sessions and aborted exchanges) so far."""
    return (counts["hello"] + counts["stream"] + counts["post"] + counts["ws_sessions"]
            + counts["abort_request"] + counts["abort_response"])


def client_process(host: str, port: int, seed: int, concurrency: int, duration: float,
                   budget: int, out: Any) -> None:
    """One load process: ``concurrency`` client coroutines for ``duration``."""
    keys = ("hello", "stream", "post", "ws_sessions", "ws_messages", "abort_request",
            "abort_response", "errors")
    counts_list = [dict.fromkeys(keys, 0) for _ in range(concurrency)]
    share = budget // concurrency + 1

    async def main() -> None:
        stop_at = time.monotonic() + duration
        tasks = []
        for i, counts in enumerate(counts_list):
            counts["budget"] = share
            client = Client(host, port, random.Random(seed * 1000 + i), counts)
            tasks.append(client.run(stop_at, [share]))
        await asyncio.gather(*tasks)

    asyncio.run(main())
    total: dict[str, Any] = dict.fromkeys(keys, 0)
    samples: list[str] = []
    for counts in counts_list:
        for key in keys:
            total[key] += counts[key]
        samples += counts.get("_samples", [])
    total["samples"] = samples[:5]
    out.put(total)


# -- measuring the server ---------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def start_server(workers: int, extra: list[str]) -> tuple[subprocess.Popen[bytes], str, int, Path]:
    log = Path(tempfile.mkstemp(prefix="pounce-soak-", suffix=".log")[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("POUNCE_")}
    env["PYTHONUNBUFFERED"] = "1"
    args = [sys.executable, "-m", "pounce", "soak:app", "--app-dir", str(HERE), "--host", "127.0.0.1",
            "--port", "0", "--no-access-log", "--log-level", "info", "--workers", str(workers),
            "--timeout-keep-alive", "30", "--backlog", "4096", *extra]
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=str(ROOT), start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        found = re.search(r"listening on http://([\d.]+):(\d+)", text)
        if found and "plugins:" in text:
            return proc, found.group(1), int(found.group(2)), log
        if proc.poll() is not None:
            raise SystemExit(f"pounce exited with {proc.returncode}:\n{text}")
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("pounce did not start in time")


def server_pids(proc: subprocess.Popen[bytes]) -> list[int]:
    """The server process and its worker processes (if any)."""
    pids = [proc.pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        pids += [int(c) for c in children]
    return pids


def sample(proc: subprocess.Popen[bytes]) -> tuple[int, int]:
    rss = fds = 0
    for pid in server_pids(proc):
        with contextlib.suppress(OSError):
            rss += rss_kib(pid)
            fds += fd_count(pid)
    return rss, fds


def slope_kib_per_min(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of RSS over time, KiB per minute."""
    if len(points) < 3:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 60


def run(args: argparse.Namespace) -> dict[str, Any]:
    proc, host, port, log = start_server(args.workers, args.server_arg)
    try:
        time.sleep(0.3)
        rss_start, fds_start = sample(proc)
        queue: Any = multiprocessing.get_context("fork").Queue()
        budget = args.requests or 10**12
        clients = [
            multiprocessing.get_context("fork").Process(
                target=client_process,
                args=(host, port, args.seed + i, args.concurrency, args.duration, budget // args.clients, queue),
            )
            for i in range(args.clients)
        ]
        started = time.monotonic()
        for c in clients:
            c.start()
        samples: list[tuple[float, int, int]] = []
        while any(c.is_alive() for c in clients):
            rss, fds = sample(proc)
            samples.append((time.monotonic() - started, rss, fds))
            for c in clients:
                c.join(timeout=max(0.0, args.sample_interval / len(clients)))
            if time.monotonic() - started > args.duration + 120:
                for c in clients:
                    c.kill()
                raise SystemExit("clients did not stop in time")
        elapsed = time.monotonic() - started
        results = [queue.get(timeout=30) for _ in clients]
        # Let the server notice the last clients' closes, then look again.
        time.sleep(1.0)
        rss_end, fds_end = sample(proc)
        proc.send_signal(signal.SIGTERM)
        try:
            exitcode = proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            exitcode = proc.wait(5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    text = log.read_text(errors="replace")
    server_errors = [line for line in text.splitlines()
                     if re.search(r"\b(ERROR|CRITICAL)\b|Traceback|Exception", line)]
    server_warnings = [line for line in text.splitlines() if re.search(r"\bWARNING\b", line)]
    total: dict[str, Any] = {}
    for r in results:
        for key, value in r.items():
            if key == "samples":
                total.setdefault("samples", []).extend(value)
            else:
                total[key] = total.get(key, 0) + value
    requests = requests_of(total)
    warm = [s for s in samples if s[0] >= elapsed * args.warmup]
    rss_warm = warm[0][1] if warm else rss_start
    rss_max = max((s[1] for s in samples), default=rss_end)
    fds_max = max((s[2] for s in samples), default=fds_end)
    slope = slope_kib_per_min([(t, r) for t, r, _ in warm])
    report = {
        "duration_s": round(elapsed, 1),
        "requests": requests,
        "requests_per_s": round(requests / elapsed) if elapsed else 0,
        "counts": {k: v for k, v in total.items() if k != "samples"},
        "client_errors": total.get("errors", 0),
        "client_error_samples": total.get("samples", []),
        "server_error_lines": len(server_errors),
        "server_error_samples": server_errors[:10],
        "server_warning_lines": len(server_warnings),
        "server_warning_samples": sorted(set(w.split("]", 1)[-1] for w in server_warnings))[:10],
        "server_exit": exitcode,
        "rss_kib": {"start": rss_start, "after_warmup": rss_warm, "max": rss_max, "end": rss_end,
                    "slope_after_warmup_kib_per_min": round(slope, 1)},
        "fds": {"start": fds_start, "max_under_load": fds_max, "end_idle": fds_end},
        "rss_series_kib": [(round(t), r) for t, r, _ in samples[::30]],
        "workers": args.workers,
        "clients": args.clients,
        "concurrency": args.concurrency,
        "log": str(log),
    }
    leak_rss = rss_end - rss_warm > args.rss_slack * 1024
    leak_fds = fds_end > fds_start
    report["ok"] = (report["client_errors"] == 0 and not server_errors and not server_warnings
                    and exitcode == 0 and not leak_rss and not leak_fds and requests > 0)
    report["verdict"] = {
        "client_errors": report["client_errors"] == 0,
        "server_errors": not server_errors,
        "server_warnings": not server_warnings,
        "clean_exit": exitcode == 0,
        "rss_flat": not leak_rss,
        "fds_back_to_start": not leak_fds,
    }
    return report


def tracemalloc_check(seconds: float, concurrency: int) -> int:
    """Python-level leak check: the same load against an in-process pounce
    under tracemalloc; print the allocation sites that grew between a
    snapshot after 15 s of warm-up and one ``seconds`` later."""
    import gc
    import tracemalloc

    sys.path.insert(0, str(ROOT))
    from pounce.testing import ServerThread

    tracemalloc.start(4)
    srv = ServerThread(app, lifespan="off", logging_access_log=False, logging_level="error",
                       timeout_keep_alive=30).start()
    queue: Any = multiprocessing.get_context("fork").Queue()

    def load(duration: float) -> dict[str, Any]:
        proc = multiprocessing.get_context("fork").Process(
            target=client_process, args=("127.0.0.1", srv.port, 7, concurrency, duration, 10**12, queue))
        proc.start()
        proc.join()
        return queue.get(timeout=30)

    try:
        load(15)
        gc.collect()
        before = tracemalloc.take_snapshot()
        counts = load(seconds)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        srv.stop()
    print(f"{requests_of(counts)} requests, {counts['errors']} errors between the snapshots")
    for stat in after.compare_to(before, "traceback")[:8]:
        print(f"{stat.size_diff:+d} bytes, {stat.count_diff:+d} blocks")
        for line in stat.traceback.format()[-4:]:
            print("    " + line)
    return 0


def heap_numbers() -> dict[str, int]:
    """Where this process's memory sits: RSS, glibc heap in use / free /
    mmapped, and pymalloc's arenas. Read together they say which layer grows:
    pymalloc arenas, live C allocations, or free-but-unreturned glibc heap."""
    import ctypes
    import tempfile as _tempfile

    numbers = {"rss_kib": rss_kib(os.getpid())}
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")

        class Info(ctypes.Structure):
            _fields_ = [(name, ctypes.c_size_t) for name in
                        ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                         "uordblks", "fordblks", "keepcost")]

        libc.mallinfo2.restype = Info
        info = libc.mallinfo2()
        numbers |= {"glibc_heap_kib": info.arena // 1024, "glibc_in_use_kib": info.uordblks // 1024,
                    "glibc_free_kib": info.fordblks // 1024, "glibc_mmap_kib": info.hblkhd // 1024}
    # sys._debugmallocstats writes to the C stderr: borrow fd 2 for a moment.
    with _tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")
    found = re.search(r"arenas allocated current\s*=\s*([\d,]+)", text)
    if found:
        numbers["pymalloc_arenas"] = int(found.group(1).replace(",", ""))
    numbers["pymalloc_blocks"] = sys.getallocatedblocks()
    return numbers


def heap_check(seconds: float, concurrency: int, interval: float) -> int:
    """Which allocator layer holds RSS growth: the soak's load against an
    in-process pounce, sampling RSS, glibc's heap and pymalloc's arenas every
    ``interval`` seconds (no tracemalloc, so the figures are the real ones)."""
    import gc

    sys.path.insert(0, str(ROOT))
    from pounce.testing import ServerThread

    srv = ServerThread(app, lifespan="off", logging_access_log=False, logging_level="error",
                       timeout_keep_alive=30).start()
    queue: Any = multiprocessing.get_context("fork").Queue()
    proc = multiprocessing.get_context("fork").Process(
        target=client_process, args=("127.0.0.1", srv.port, 7, concurrency, seconds, 10**12, queue))
    rows: list[dict[str, int]] = []
    try:
        started = time.monotonic()
        proc.start()
        while proc.is_alive():
            proc.join(timeout=interval)
            gc.collect()
            rows.append({"t": round(time.monotonic() - started)} | heap_numbers())
            print(json.dumps(rows[-1]), flush=True)
        counts = queue.get(timeout=30)
    finally:
        srv.stop()
    print(f"{requests_of(counts)} requests, {counts['errors']} errors")
    return 0 if counts["errors"] == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600)")
    parser.add_argument("--requests", type=int, default=0, help="stop after about this many (0: duration only)")
    parser.add_argument("--clients", type=int, default=2, help="client processes (default 2)")
    parser.add_argument("--concurrency", type=int, default=16, help="connections per client process")
    parser.add_argument("--workers", type=int, default=1, help="pounce workers (default 1)")
    parser.add_argument("--warmup", type=float, default=0.2, help="fraction of the run counted as warm-up")
    parser.add_argument("--rss-slack", type=float, default=2.0, help="MiB RSS may grow after warm-up (default 2)")
    parser.add_argument("--sample-interval", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="also write the report here")
    parser.add_argument("--server-arg", action="append", default=[], help="extra pounce argument (repeatable)")
    parser.add_argument("--tracemalloc", type=float, metavar="SECONDS", default=0,
                        help="instead: in-process leak check over SECONDS of load (tracemalloc)")
    parser.add_argument("--heap", type=float, metavar="SECONDS", default=0,
                        help="instead: in-process run sampling RSS, glibc heap and pymalloc arenas")
    args = parser.parse_args(argv)
    if args.heap:
        return heap_check(args.heap, args.concurrency, max(args.sample_interval, 10.0))
    if args.tracemalloc:
        return tracemalloc_check(args.tracemalloc, args.concurrency)
    report = run(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
