"""Side-by-side benchmark: pounce against uvicorn, granian and hypercorn on the same ASGI app.

Run through ``bash benchmarks/run.sh`` (or ``make bench``), which builds the
benchmark's own venv first. Direct use, inside that venv::

    python benchmarks/bench.py [--rounds 5] [--duration 5] [--servers ...]
                               [--scenarios ...] [--publish]
    python benchmarks/bench.py --profile [--duration 15]

Method, and why:

- Server pinned to CPU 0, load generator pinned to CPU 1 (``taskset``): on a
  two-core machine they would otherwise fight for the same core and the
  figures would measure the scheduler.
- Alternating rounds (server order rotated each round) and medians, and
  within a round each scenario measured on every server back to back (a
  fresh server each time), so that a slow minute on a shared machine hits
  every server's figure for that scenario instead of one server's. The
  hypervisor's steal share of both cores is recorded per measurement
  (``steal_pct``, from ``/proc/stat``): a high one says the figure is the
  host's, not the server's.
- Every contender runs one worker, access log off, log level warning, the
  same keep-alive timeout and backlog where it has those settings.
- Server and client CPU are read from ``/proc`` and ``getrusage`` around
  each measured run: the server's CPU per MiB for the file scenario, and the
  load client's share of its core for every scenario (``client_cpu_pct``:
  near 100 % means the client, not the server, set the pace).
- HTTP load comes from wrk; WebSocket echo and the 10,000 idle connections
  come from small asyncio clients in this file (run as subprocesses on CPU 1),
  written against raw bytes so that the client costs far less than the server
  it drives.
- Every result is written to ``benchmarks/results/`` (JSON, Markdown table,
  PNG chart); ``--publish`` keeps the run as the published one
  (``docs/assets/bench/``) and renders it, by ``publish.py``, into the
  performance page and the README: no figure is typed by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
SERVER_CPU = 0
CLIENT_CPU = 1

# -- servers -------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSpec:
    """How to start one contender; ``{port}`` is filled in per start."""

    name: str
    label: str
    args: tuple[str, ...]


def _pounce_args(loop: str) -> tuple[str, ...]:
    args = [
        "-m", "pounce", "apps:app", "--app-dir", str(BENCH_DIR),
        "--host", "127.0.0.1", "--port", "{port}",
        "--no-access-log", "--log-level", "warning",
        "--timeout-keep-alive", "300", "--backlog", "4096", "--ws-ping-interval", "0",
    ]
    if _pounce_has_loop_option():
        args += ["--loop", loop]
    return tuple(args)


def _uvicorn_args(http: str, loop: str, ws: str) -> tuple[str, ...]:
    return (
        "-m", "uvicorn", "apps:app", "--app-dir", str(BENCH_DIR),
        "--host", "127.0.0.1", "--port", "{port}",
        "--http", http, "--loop", loop, "--ws", ws,
        "--no-access-log", "--log-level", "warning",
        "--timeout-keep-alive", "300", "--backlog", "4096", "--ws-ping-interval", "0",
    )


def _granian_args() -> tuple[str, ...]:
    # (--loop auto: uvloop where installed, as granian picks by default; no
    # keep-alive timeout to set, keep-alive is on.)
    return (
        "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", "{port}",
        "--workers", "1", "--no-access-log", "--log-level", "warning", "--backlog", "4096",
        "--working-dir", str(BENCH_DIR), "apps:app",
    )


def _hypercorn_args() -> tuple[str, ...]:
    # (Hypercorn's access log is off unless --access-logfile is given.)
    return (
        "-m", "hypercorn", "apps:app", "--bind", "127.0.0.1:{port}", "--workers", "1",
        "--worker-class", "asyncio", "--keep-alive", "300", "--backlog", "4096",
        "--log-level", "warning", "--websocket-ping-interval", "0",
    )


_LOOP_OPTION: bool | None = None


def _pounce_has_loop_option() -> bool:
    """``--loop`` arrived with issue 10; older trees run asyncio anyway."""
    global _LOOP_OPTION
    if _LOOP_OPTION is None:
        out = subprocess.run([sys.executable, "-m", "pounce", "--help"], capture_output=True, text=True,
                             timeout=60, cwd=BENCH_DIR)
        _LOOP_OPTION = "--loop" in out.stdout
    return _LOOP_OPTION


def server_specs() -> dict[str, ServerSpec]:
    return {
        "pounce": ServerSpec("pounce", "pounce (asyncio)", _pounce_args("asyncio")),
        "pounce-uvloop": ServerSpec("pounce-uvloop", "pounce (uvloop)", _pounce_args("uvloop")),
        "uvicorn-h11": ServerSpec("uvicorn-h11", "uvicorn h11+asyncio",
                                  _uvicorn_args("h11", "asyncio", "wsproto")),
        "uvicorn-fast": ServerSpec("uvicorn-fast", "uvicorn httptools+uvloop",
                                   _uvicorn_args("httptools", "uvloop", "websockets")),
        # uvicorn's faster WebSocket stack on plain asyncio (issue 22's ws target).
        "uvicorn-ws": ServerSpec("uvicorn-ws", "uvicorn h11+asyncio, websockets",
                                 _uvicorn_args("h11", "asyncio", "websockets")),
        "granian": ServerSpec("granian", "granian (ASGI)", _granian_args()),
        "hypercorn": ServerSpec("hypercorn", "hypercorn (asyncio)", _hypercorn_args()),
    }


DEFAULT_SERVERS = ("pounce", "uvicorn-h11", "uvicorn-fast", "granian")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin(cpu: int) -> list[str]:
    """``taskset`` prefix; empty on a one-core machine (nothing to separate)."""
    if (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
        return []
    return ["taskset", "-c", str(cpu)]


class RunningServer:
    """A contender started as a subprocess on the server CPU."""

    def __init__(self, spec: ServerSpec, log_dir: Path) -> None:
        self.spec = spec
        self.port = free_port()
        args = [a.replace("{port}", str(self.port)) for a in spec.args]
        self.log_path = log_dir / f"{spec.name}-{self.port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [*pin(SERVER_CPU), sys.executable, *args], cwd=BENCH_DIR, env=env,
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.spec.name} exited with {self.proc.returncode}: "
                                   f"{self.log_path.read_text(errors='replace')[-2000:]}")
            with contextlib.suppress(OSError):
                if http_get_ok(self.port):
                    return
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{self.spec.name} did not answer within {timeout}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()

    def memory_kib(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) in KiB, summed over the server and its children."""
        rss = hwm = 0
        for pid in process_tree(self.proc.pid):
            status = _read_status(pid)
            rss += status.get("VmRSS", 0)
            hwm += status.get("VmHWM", 0)
        return rss, hwm


def http_get_ok(port: int, path: str = "/") -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n" % path.encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.startswith(b"HTTP/1.1 200")


def process_tree(root: int) -> list[int]:
    pids = [root]
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    i = 0
    while i < len(pids):
        pids.extend(children.get(pids[i], []))
        i += 1
    return pids


def _read_status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":", 1)
            out[key] = int(value.split()[0])
    return out


# -- scenarios --------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_is_better: bool


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    kind: str  # wrk | ws | idle
    metrics: tuple[Metric, ...]
    path: str = "/"
    conns: int = 64
    extra: dict[str, Any] = field(default_factory=dict)


RPS = Metric("rps", "req/s", "req/s", True)
P50 = Metric("p50_ms", "p50", "ms", False)
P99 = Metric("p99_ms", "p99", "ms", False)
CPU_PER_MIB = Metric("cpu_ms_per_mib", "server CPU per MiB", "ms", False)
MIB = 1024 * 1024

SCENARIOS: dict[str, Scenario] = {
    s.name: s for s in (
        Scenario("hello64", "hello world, 64 conns", "wrk", (RPS, P50, P99), "/", 64),
        Scenario("hello1", "hello world, 1 conn", "wrk", (RPS, P50, P99), "/", 1),
        Scenario("stream1m", "1 MiB stream (64 KiB chunks), 16 conns", "wrk", (RPS,), "/stream", 16,
                 {"mib": 1}),
        # Fewer, longer streams: the same bytes for far less of wrk's
        # per-request work, so the server's own cost shows.
        Scenario("stream8m", "8 MiB stream (64 KiB chunks), 4 conns", "wrk", (RPS, CPU_PER_MIB),
                 "/stream8m", 4, {"mib": 8}),
        # Starlette's FileResponse of a 1 MiB file (issue 17): pounce sends it
        # with sendfile through http.response.pathsend, others read and send.
        Scenario("file1m", "1 MiB Starlette FileResponse, 16 conns", "wrk", (RPS, CPU_PER_MIB),
                 "/file1m", 16, {"mib": 1}),
        Scenario("post64k", "64 KiB POST read in full, 64 conns", "wrk", (RPS,), "/upload", 64,
                 {"body_size": 64 * 1024}),
        Scenario("ws_echo", "WebSocket echo 16 B, 32 conns", "ws",
                 (Metric("msgs", "msg/s", "msg/s", True),), "/ws", 32, {"size": 16}),
        Scenario("idle10k", "10,000 idle keep-alive conns", "idle",
                 (Metric("peak_rss_mib", "peak RSS", "MiB", False),
                  Metric("accept_s", "accept time", "s", False)), "/", 10000),
    )
}


_LAT = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_TOTAL = re.compile(r"^\s*(\d+) requests in ", re.M)
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKERR = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def parse_wrk(text: str) -> dict[str, float]:
    """Requests/sec, latency percentiles (ms) and error counts from wrk's report."""
    match = _RPS.search(text)
    if match is None:
        raise RuntimeError(f"could not read wrk output:\n{text}")
    out: dict[str, float] = {"rps": float(match.group(1))}
    if (total := _TOTAL.search(text)) is not None:
        out["requests"] = float(total.group(1))
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    for pct, value, unit in _LAT.findall(text):
        out[f"p{pct}_ms"] = float(value) * scale[unit]
    errors = 0
    if (m := _NON2XX.search(text)) is not None:
        errors += int(m.group(1))
    if (m := _SOCKERR.search(text)) is not None:
        # wrk counts a keep-alive close at the end of the run as a read error;
        # connect/write/timeout errors are real.
        errors += int(m.group(1)) + int(m.group(3)) + int(m.group(4))
    out["errors"] = errors
    return out


def run_wrk(scenario: Scenario, port: int, duration: float, lua_dir: Path) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}{scenario.path}"
    seconds = max(1, round(duration))  # wrk takes whole seconds only
    cmd = [*pin(CLIENT_CPU), "wrk", "-t1", f"-c{scenario.conns}", f"-d{seconds}s",
           "--latency", "--timeout", "10s"]
    size = scenario.extra.get("body_size")
    if size:
        script = lua_dir / f"post{size}.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f'wrk.body = string.rep("x", {size})\n'
            'wrk.headers["Content-Type"] = "application/octet-stream"\n'
        )
        cmd += ["-s", str(script)]
    cmd.append(url)
    used = children_cpu()
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout[:500]}")
    out = parse_wrk(proc.stdout)
    out["client_cpu_pct"] = 100 * (children_cpu() - used) / wall
    return out


def run_client(kind: str, port: int, *args: str, timeout: float) -> dict[str, Any]:
    cmd = [*pin(CLIENT_CPU), sys.executable, str(Path(__file__).resolve()), "--client", kind,
           "--port", str(port), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} client failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def children_cpu() -> float:
    """CPU seconds used so far by this process's waited-for children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tree_cpu(root: int) -> float:
    """CPU seconds used so far by a process and its live children (the server)."""
    ticks = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def run_idle(server: RunningServer, conns: int) -> dict[str, float]:
    """Open ``conns`` keep-alive connections (one request each), hold them,
    read the server's memory, then drop them."""
    rss_before, _ = server.memory_kib()
    cmd = [*pin(CLIENT_CPU), sys.executable, str(Path(__file__).resolve()), "--client", "idle",
           "--port", str(server.port), "--conns", str(conns)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"idle client failed: {proc.stderr.read()[-2000:]}")  # type: ignore[union-attr]
        report = json.loads(line)
        time.sleep(1.0)  # let the server settle with every connection open
        rss_held, hwm = server.memory_kib()
        still_open = server.proc.poll() is None
        proc.stdin.write("close\n")
        proc.stdin.flush()
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    return {
        "peak_rss_mib": hwm / 1024,
        "rss_before_mib": rss_before / 1024,
        "rss_held_mib": rss_held / 1024,
        "kib_per_conn": (rss_held - rss_before) / max(conns, 1),
        "accept_s": report["accept_s"],
        "errors": report["failed"] + (0 if still_open else conns),
    }


# -- the clients (run as subprocesses pinned to the client CPU) ---------------------


def _fast_loop() -> None:
    """The clients use uvloop when present: the client must not be the bottleneck."""
    with contextlib.suppress(ImportError):
        import uvloop  # type: ignore[import-not-found]

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


class _WsEcho(asyncio.Protocol):
    """One WebSocket connection keeping exactly one 16-byte message in flight."""

    def __init__(self, handshake: bytes, frame: bytes, stats: dict[str, Any]) -> None:
        self.handshake = handshake
        self.frame = frame
        self.stats = stats
        self.buf = b""
        self.upgraded = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.write(self.handshake)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        if not self.upgraded.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                status = buf.split(b"\r\n", 1)[0].decode("latin-1")
                self.upgraded.set_exception(RuntimeError(f"handshake refused: {status}"))
                return
            buf = buf[end + 4:]
            self.upgraded.set_result(None)
        pos = 0
        n = len(buf)
        stats = self.stats
        while n - pos >= 2:
            length = buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 4], "big")
                head = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 10], "big")
                head = 10
            if n - pos < head + length:
                break
            opcode = buf[pos] & 0x0F
            pos += head + length
            if opcode in (1, 2):
                stats["count"] += 1
                if stats["running"]:
                    self.transport.write(self.frame)  # type: ignore[union-attr]
        self.buf = buf[pos:]


async def ws_client(port: int, conns: int, size: int, duration: float, warmup: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    handshake = (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    mask = os.urandom(4)
    payload = b"0123456789abcdef"[:size].ljust(size, b"x")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    frame = bytes([0x81, 0x80 | size]) + mask + masked
    stats: dict[str, Any] = {"count": 0, "running": True}
    protocols = []
    for _ in range(conns):
        _, proto = await loop.create_connection(lambda: _WsEcho(handshake, frame, stats), "127.0.0.1", port)
        protocols.append(proto)
    await asyncio.wait_for(asyncio.gather(*(p.upgraded for p in protocols)), 30)
    for proto in protocols:
        proto.transport.write(frame)
    await asyncio.sleep(warmup)
    start_count, start, cpu = stats["count"], time.perf_counter(), time.process_time()
    await asyncio.sleep(duration)
    count, elapsed = stats["count"] - start_count, time.perf_counter() - start
    cpu = time.process_time() - cpu
    stats["running"] = False
    for proto in protocols:
        proto.transport.abort()
    return {"msgs": count / elapsed, "errors": 0, "client_cpu_pct": 100 * cpu / elapsed}


class _IdleConn(asyncio.Protocol):
    """Sends one GET, waits for the whole response, then stays open and quiet."""

    REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"

    def __init__(self) -> None:
        self.done = asyncio.get_running_loop().create_future()
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.REQUEST)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end >= 0 and not self.done.done():
            match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", self.buf[:end])
            if match and len(self.buf) >= end + 4 + int(match.group(1)):
                self.done.set_result(self.buf.startswith(b"HTTP/1.1 200"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(False)


async def idle_client(port: int, conns: int, parallel: int = 256) -> None:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(parallel)
    protocols: list[_IdleConn] = []
    failed = 0

    async def one() -> None:
        nonlocal failed
        async with gate:
            try:
                _, proto = await asyncio.wait_for(
                    loop.create_connection(_IdleConn, "127.0.0.1", port), 30)
                protocols.append(proto)
                ok = await asyncio.wait_for(proto.done, 30)
            except (OSError, asyncio.TimeoutError):
                ok = False
            if not ok:
                failed += 1

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(conns)))
    accept_s = time.perf_counter() - start
    print(json.dumps({"accept_s": accept_s, "failed": failed, "open": len(protocols)}), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    for proto in protocols:
        transport = proto.transport
        if transport is not None and not transport.is_closing():
            sock = transport.get_extra_info("socket")
            with contextlib.suppress(OSError):
                # RST instead of FIN: no TIME_WAIT pile-up across rounds.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            transport.abort()


def client_main(args: argparse.Namespace) -> int:
    raise_nofile()
    _fast_loop()
    if args.client == "ws":
        result = asyncio.run(ws_client(args.port, args.conns, args.size, args.duration, args.warmup))
        print(json.dumps(result), flush=True)
    elif args.client == "idle":
        asyncio.run(idle_client(args.port, args.conns))
    else:
        raise SystemExit(f"unknown client {args.client}")
    return 0


# -- orchestration ----------------------------------------------------------------------


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def machine_info(extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """The machine, the tools and the installed versions of the contenders
    (and of ``extra`` distributions, where a benchmark needs more)."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str] = {}
    for dist in ("uvicorn", "h11", "httptools", "uvloop", "websockets", "wsproto", "pluggy", "granian",
                 "hypercorn", "starlette", *extra):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[dist] = version(dist)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=REPO).stdout.strip()
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    wrk = wrk.split(" Copyright")[0]
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_at_start": os.getloadavg(),
        "pounce_commit": commit,
        "versions": versions,
        "wrk": wrk.strip(),
    }


def measure(spec: ServerSpec, scenarios: list[Scenario], args: argparse.Namespace,
            log_dir: Path) -> dict[str, dict[str, float]]:
    """One round for one server: a fresh server for the load scenarios, and
    another for the idle scenario so its peak RSS is not an earlier one's."""
    out: dict[str, dict[str, float]] = {}
    load = [s for s in scenarios if s.kind != "idle"]
    if load:
        server = RunningServer(spec, log_dir)
        try:
            if not _started(server, load, out):
                return out
            for sc in load:
                out[sc.name] = _guarded(spec, sc, lambda sc=sc: _load(sc, server, args, log_dir))
        finally:
            server.stop()
    for sc in scenarios:
        if sc.kind != "idle":
            continue
        server = RunningServer(spec, log_dir)
        try:
            if not _started(server, [sc], out):
                continue
            conns = args.idle_conns or sc.conns
            out[sc.name] = _guarded(spec, sc, lambda server=server, conns=conns: run_idle(server, conns))
        finally:
            server.stop()
    return out


def _started(server: RunningServer, scenarios: list[Scenario], out: dict[str, dict[str, float]]) -> bool:
    """Wait for the server; one that never answers fails its scenarios (with
    the reason from its log), not the whole run."""
    try:
        server.wait_ready()
    except (RuntimeError, TimeoutError) as exc:
        lines = [ln for ln in server.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        reason = lines[-1].strip()[:160] if lines else str(exc)
        for sc in scenarios:
            print(f"    {server.spec.name:<14} {sc.name:<9} FAILED: server did not start ({reason})", flush=True)
            out[sc.name] = {"errors": 1, "failed": 1}
        return False
    return True


def steal_ticks() -> tuple[int, int]:
    """(steal, all) clock ticks of every CPU so far, from ``/proc/stat``:
    what the hypervisor gave to other guests while this one wanted to run."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0, 0
    return fields[7], sum(fields)


def _load(sc: Scenario, server: RunningServer, args: argparse.Namespace, log_dir: Path) -> dict[str, float]:
    steal0, ticks0 = steal_ticks()
    result = _load_once(sc, server, args, log_dir)
    steal1, ticks1 = steal_ticks()
    if ticks1 > ticks0:
        result["steal_pct"] = 100 * (steal1 - steal0) / (ticks1 - ticks0)
    return result


def _load_once(sc: Scenario, server: RunningServer, args: argparse.Namespace, log_dir: Path) -> dict[str, float]:
    if sc.kind == "wrk":
        if args.warmup > 0:
            run_wrk(sc, server.port, args.warmup, log_dir)
        before = tree_cpu(server.pid)
        result = run_wrk(sc, server.port, args.duration, log_dir)
        used = tree_cpu(server.pid) - before
        result["server_cpu_pct"] = 100 * used / max(1, round(args.duration))
        mib = sc.extra.get("mib")
        if mib and result.get("requests"):
            result["cpu_ms_per_mib"] = 1000 * used / (result["requests"] * mib)
        return result
    before = tree_cpu(server.pid)
    result = run_client(
        "ws", server.port, "--conns", str(sc.conns), "--size", str(sc.extra["size"]),
        "--duration", str(args.duration), "--warmup", str(args.warmup),
        timeout=args.duration + args.warmup + 90)
    # (The client reports its own CPU share over the measured seconds.)
    result["server_cpu_pct"] = 100 * (tree_cpu(server.pid) - before) / (args.duration + args.warmup)
    return result


def _guarded(spec: ServerSpec, sc: Scenario, run: Any) -> dict[str, float]:
    """A scenario a server fails (crash, 501, timeout) is reported, not fatal:
    the other scenarios and servers still get measured."""
    try:
        result = run()
    except Exception as exc:  # noqa: BLE001 - reported in the table
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        reason = lines[-1].strip()[:160] if lines else type(exc).__name__
        print(f"    {spec.name:<14} {sc.name:<9} FAILED: {reason}", flush=True)
        return {"errors": 1, "failed": 1}
    print(f"    {spec.name:<14} {sc.name:<9} {_brief(sc, result)}", flush=True)
    return result


def _brief(sc: Scenario, result: dict[str, float]) -> str:
    parts = [f"{m.label} {result.get(m.key, float('nan')):,.2f} {m.unit}" for m in sc.metrics]
    if result.get("errors"):
        parts.append(f"ERRORS {int(result['errors'])}")
    return ", ".join(parts)


def summarise(raw: dict[str, list[dict[str, dict[str, float]]]], scenarios: list[Scenario],
              servers: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Medians per server, scenario and metric."""
    med: dict[str, dict[str, dict[str, float]]] = {}
    for name in servers:
        med[name] = {}
        for sc in scenarios:
            rounds = [r[sc.name] for r in raw[name] if sc.name in r]
            good = [r for r in rounds if not r.get("failed")]
            keys = {k for r in good for k in r}
            med[name][sc.name] = {k: statistics.median(r[k] for r in good if k in r) for k in keys}
            med[name][sc.name]["errors"] = sum(r.get("errors", 0) for r in rounds)
            med[name][sc.name]["failed_rounds"] = len(rounds) - len(good)
    return med


def save_run(name: str, info: dict[str, Any], args: argparse.Namespace, raw: Any, medians: Any,
             text: str) -> None:
    """A side benchmark's run kept in ``results/``: ``NAME-STAMP.json`` (the
    rounds and medians) and ``.md`` (its table)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"{name}-{stamp}.json").write_text(json.dumps(
        {"machine": info, "args": vars(args), "rounds": raw, "medians": medians}, indent=2))
    (RESULTS / f"{name}-{stamp}.md").write_text(
        f"# {name}_bench {stamp}\n\n{info}\n\nrounds {args.rounds}, {args.duration:g} s each\n{text}\n")


def bench_main(args: argparse.Namespace) -> int:
    raise_nofile()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (benchmarks/run.sh installs it)")
    if (os.cpu_count() or 1) >= 2:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {CLIENT_CPU})
    specs = server_specs()
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [s for s in servers if s not in specs]
    if unknown:
        raise SystemExit(f"unknown servers {unknown}; known: {list(specs)}")
    scenarios = [SCENARIOS[s.strip()] for s in args.scenarios.split(",") if s.strip()]
    if args.idle_conns:
        scenarios = [
            dataclasses.replace(sc, conns=args.idle_conns, title=f"{args.idle_conns:,} idle keep-alive conns")
            if sc.kind == "idle" else sc
            for sc in scenarios
        ]
    info = machine_info()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out_dir = RESULTS
    log_dir = RESULTS / f"logs-{stamp}"
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {info['nproc']} x {info['cpu']}, Python {info['python']}, load {info['loadavg_at_start']}")
    raw: dict[str, list[dict[str, dict[str, float]]]] = {s: [] for s in servers}
    for rnd in range(args.rounds):
        order = servers[rnd % len(servers):] + servers[:rnd % len(servers)]
        print(f"round {rnd + 1}/{args.rounds}: {' -> '.join(order)}", flush=True)
        this_round: dict[str, dict[str, dict[str, float]]] = {name: {} for name in order}
        for sc in scenarios:
            for name in order:
                this_round[name].update(measure(specs[name], [sc], args, log_dir))
        for name in order:
            raw[name].append(this_round[name])
    med = summarise(raw, scenarios, servers)
    labels = {name: specs[name].label for name in servers}
    result = {"info": info, "args": vars(args), "servers": labels, "raw": raw, "medians": med,
              "scenarios": {sc.name: {"title": sc.title, "metrics": [m.__dict__ for m in sc.metrics]}
                            for sc in scenarios}}
    from publish import full_table, publish  # benchmarks/publish.py, next to this file

    table = full_table(result)
    print()
    print(table)
    json_path = out_dir / f"bench-{stamp}.json"
    json_path.write_text(json.dumps(result, indent=2))
    (out_dir / f"bench-{stamp}.md").write_text(table + "\n")
    chart_png: Path | None = out_dir / f"bench-{stamp}.png"
    try:
        from chart import render  # benchmarks/chart.py, next to this file

        render(result, chart_png)
    except ImportError as exc:
        print(f"no chart ({exc}); install matplotlib", file=sys.stderr)
        chart_png = None
    for suffix, src in (("json", json_path), ("md", out_dir / f"bench-{stamp}.md"), ("png", chart_png)):
        if src is not None and src.exists():
            shutil.copyfile(src, out_dir / f"latest.{suffix}")
    print(f"\nresults: {json_path}" + (f", chart: {chart_png}" if chart_png else ""))
    if args.publish:
        publish(result, chart_png)
    return 0


# -- profiling --------------------------------------------------------------------------


def profile_main(args: argparse.Namespace) -> int:
    """py-spy samples pounce while wrk drives hello world at 64 connections;
    prints where the time goes (self and inclusive, per function)."""
    raise_nofile()
    if shutil.which("py-spy") is None and not (Path(sys.executable).parent / "py-spy").exists():
        raise SystemExit("py-spy is not installed in this venv")
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    spec = server_specs()[args.profile_server]
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    raw_path = RESULTS / f"profile-{spec.name}-{stamp}.txt"
    server = RunningServer(spec, RESULTS)
    try:
        server.wait_ready()
        sc = SCENARIOS["hello64"]
        run_wrk(sc, server.port, 1, RESULTS)
        spy = subprocess.Popen(
            [*pin(CLIENT_CPU), pyspy, "record", "--pid", str(server.pid), "--duration", f"{args.duration:g}",
             "--rate", "250", "--format", "raw", "--output", str(raw_path), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        result = run_wrk(sc, server.port, args.duration + 1, RESULTS)
        spy.wait(args.duration + 60)
    finally:
        server.stop()
    print(f"under profiling: {result['rps']:,.0f} req/s (py-spy slows the server a little)")
    print(summarise_collapsed(raw_path.read_text(), top=args.top))
    print(f"collapsed stacks: {raw_path}")
    return 0


def cprofile_main(args: argparse.Namespace) -> int:
    """cProfile inside pounce while wrk drives hello world at 64 connections:
    Python function calls per request, and the functions that cost most.
    cProfile's own overhead inflates call-heavy code, so read the shares
    with py-spy's (``--profile``) beside them."""
    import pstats

    spec = server_specs()[args.profile_server]
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    prof_path = RESULTS / f"cprofile-{spec.name}-{stamp}.prof"
    profiled = ServerSpec(spec.name, spec.label, ("-m", "cProfile", "-o", str(prof_path), *spec.args))
    server = RunningServer(profiled, RESULTS)
    try:
        server.wait_ready()
        result = run_wrk(SCENARIOS["hello64"], server.port, args.duration, RESULTS)
    finally:
        server.stop()
    requests = result["requests"]
    stats = pstats.Stats(str(prof_path))
    total_calls = stats.total_calls  # type: ignore[attr-defined]
    print(f"under cProfile: {result['rps']:,.0f} req/s, {requests:,.0f} requests, "
          f"{total_calls / requests:.0f} Python function calls per request (startup included)")
    rows = []
    for (path, line, func), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((tottime, cumtime, ncalls, f"{func} ({'/'.join(Path(path).parts[-2:])}:{line})"))
    rows.sort(reverse=True)
    print(f"\n{'tottime/req (us)':>17} {'cumtime/req (us)':>17} {'calls/req':>10}  function")
    for tottime, cumtime, ncalls, name in rows[:args.top]:
        print(f"{1e6 * tottime / requests:>17.2f} {1e6 * cumtime / requests:>17.2f} "
              f"{ncalls / requests:>10.2f}  {name}")
    print(f"\nprofile: {prof_path}")
    return 0


def summarise_collapsed(text: str, top: int = 30) -> str:
    """Self and inclusive share per function from py-spy's collapsed stacks."""
    self_n: dict[str, int] = {}
    incl_n: dict[str, int] = {}
    total = 0
    for line in text.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        total += count
        frames = [_frame_name(f) for f in stack.split(";")]
        for name in set(frames):
            incl_n[name] = incl_n.get(name, 0) + count
        self_n[frames[-1]] = self_n.get(frames[-1], 0) + count
    if not total:
        return "no samples"
    by_file: dict[str, int] = {}
    for name, n in self_n.items():
        match = re.search(r"\((.*)\)$", name)
        key = match.group(1) if match else "(other)"
        by_file[key] = by_file.get(key, 0) + n
    out = [f"{total} samples", "", "self time by file:"]
    for name, n in sorted(by_file.items(), key=lambda kv: -kv[1])[:15]:
        out.append(f"  {100 * n / total:5.1f}%  {name}")
    out += ["", f"top {top} by self time:"]
    for name, n in sorted(self_n.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {100 * n / total:5.1f}%  {name}")
    out += ["", f"top {top} by inclusive time (coroutine stacks start at the task, so the loop's"
                " share is understated):"]
    for name, n in sorted(incl_n.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {100 * n / total:5.1f}%  {name}")
    return "\n".join(out)


def _frame_name(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)".
    match = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not match:
        return frame
    func, path = match.groups()
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f"{func} ({short})"


# -- parser microbenchmark ----------------------------------------------------------------

PARSER_CASES = {
    "wrk hello": b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n",
    "browser GET (9 headers)": (
        b"GET /static/app.js?v=3 HTTP/1.1\r\nHost: example.com\r\n"
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
        b"Accept: */*\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n"
        b"Referer: https://example.com/\r\nConnection: keep-alive\r\nCookie: session=abc123; theme=dark\r\n"
        b"Sec-Fetch-Dest: script\r\n\r\n"
    ),
    "POST 64 KiB head": (
        b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Length: 65536\r\n"
        b"Content-Type: application/octet-stream\r\n\r\n"
    ),
}


def parser_main(args: argparse.Namespace) -> int:
    """Per-request-head cost: h1fast against h11 (Request event only, the
    cost of a fresh h11.Connection subtracted)."""
    import timeit

    import h11

    from pounce.core.protocol.h1fast import parse_request_head

    def per_call(fn: Any, number: int) -> float:
        # CPU time, not wall time: on a shared machine, others' load would
        # otherwise land in the figures.
        return min(timeit.repeat(fn, number=number, repeat=7, timer=time.process_time)) / number * 1e6

    print(f"{'request head':<26} {'h11 (us)':>9} {'h1fast (us)':>12} {'speed-up':>9}")
    for name, data in PARSER_CASES.items():
        assert parse_request_head(data) is not None

        def with_h11(data: bytes = data) -> None:
            conn = h11.Connection(h11.SERVER)
            conn.receive_data(data)
            conn.next_event()

        def fresh() -> None:
            h11.Connection(h11.SERVER)

        h11_us = per_call(with_h11, 20000) - per_call(fresh, 20000)
        fast_us = per_call(lambda data=data: parse_request_head(data), 100000)
        print(f"{name:<26} {h11_us:>9.2f} {fast_us:>12.2f} {h11_us / fast_us:>8.1f}x")

    from pounce.core.protocol.responses import render_response_head

    request = PARSER_CASES["wrk hello"]
    headers = [(b"server", b"pounce"), (b"date", b"Wed, 25 Nov 2026 21:00:00 GMT"),
               (b"content-type", b"text/plain"), (b"content-length", b"13")]

    def ready() -> h11.Connection:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(request)
        conn.next_event()
        conn.next_event()
        return conn

    def h11_send() -> None:
        ready().send(h11.Response(status_code=200, headers=headers, reason=b"OK"))

    def fast_send() -> None:
        render_response_head(200, headers, reason=b"OK", request_method=b"GET", request_version=b"1.1",
                             keep_alive=True)

    h11_us = per_call(h11_send, 20000) - per_call(ready, 20000)
    fast_us = per_call(fast_send, 100000)
    print(f"{'response head (4 headers)':<26} {h11_us:>9.2f} {fast_us:>12.2f} {h11_us / fast_us:>8.1f}x")

    # The whole h11 share of one keep-alive hello-world request, against the
    # fast path doing the same job (parse, frame, render, body).
    conn = h11.Connection(h11.SERVER)

    def h11_cycle() -> None:
        conn.receive_data(request)
        conn.next_event()
        conn.next_event()
        out = [conn.send(h11.Response(status_code=200, headers=headers, reason=b"OK")),
               conn.send(h11.Data(data=b"Hello, world!")), conn.send(h11.EndOfMessage())]
        b"".join(out)  # type: ignore[arg-type]
        conn.next_event()
        conn.start_next_cycle()

    def fast_cycle() -> None:
        head = parse_request_head(request)
        assert head is not None
        response = render_response_head(200, headers, reason=b"OK", request_method=head.method,
                                        request_version=head.http_version, keep_alive=head.keep_alive)
        response.data + b"Hello, world!"

    h11_us = per_call(h11_cycle, 20000)
    fast_us = per_call(fast_cycle, 50000)
    print(f"{'whole hello cycle':<26} {h11_us:>9.2f} {fast_us:>12.2f} {h11_us / fast_us:>8.1f}x")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds measured per scenario")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per scenario (0: none)")
    parser.add_argument("--servers", default=",".join(DEFAULT_SERVERS),
                        help="comma-separated, from pounce, pounce-uvloop, uvicorn-h11, uvicorn-fast, "
                             "uvicorn-ws, granian, hypercorn")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated, from {', '.join(SCENARIOS)}")
    parser.add_argument("--idle-conns", type=int, default=0, help="override the idle scenario's 10,000")
    parser.add_argument("--publish", action="store_true",
                        help="keep this run as the published one: docs/performance.md and the README's table")
    parser.add_argument("--profile", action="store_true", help="py-spy profile of hello world instead")
    parser.add_argument("--cprofile", action="store_true",
                        help="cProfile of hello world: calls and time per request")
    parser.add_argument("--profile-server", default="pounce")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--parser", action="store_true",
                        help="microbenchmark the request-head parsers (h1fast against h11) instead")
    # Internal: the load clients.
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--conns", type=int, default=32, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=16, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        return client_main(args)
    if args.profile:
        return profile_main(args)
    if args.cprofile:
        return cprofile_main(args)
    if args.parser:
        return parser_main(args)
    return bench_main(args)


if __name__ == "__main__":
    sys.exit(main())
