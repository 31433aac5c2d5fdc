"""HTTP/3: pounce's http3 plugin against hypercorn's HTTP/3 (both on aioquic).

Scenario ``h3hello``: ``GET /`` of the benchmark app (13 bytes), over QUIC,
``--conns`` connections each keeping ``--streams`` requests in flight, for
``--duration`` seconds after a warm-up. Server on CPU 0, load client on
CPU 1 (``taskset``), alternating rounds, medians. Reported per server:
req/s, the server's CPU time per request (user + system, its whole process
tree, over the measured window), and the client's CPU use.

The load client is pure Python on aioquic's client API (:func:`client`),
one process. **Its ceiling** is about what one core of aioquic can do
(encrypting, parsing and acknowledging both ways): when the client's CPU
column reads ~100 %, req/s is the client's limit, not the server's, and the
servers compare by CPU per request instead (the server's core is then not
saturated). Run it in the benchmark venv (``benchmarks/run.sh`` installs
hypercorn with its HTTP/3 extra)::

    bash benchmarks/run.sh --h3 [--rounds 3] [--duration 5] [--conns 8] [--streams 8]

Results: ``benchmarks/results/h3-<time>.{json,md}``; the table is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
SERVER_CPU, CLIENT_CPU = 0, 1
TICKS = os.sysconf("SC_CLK_TCK")


def pin(cpu: int) -> list[str]:
    if (os.cpu_count() or 1) < 2 or not _which("taskset"):
        return []
    return ["taskset", "-c", str(cpu)]


def _which(name: str) -> bool:
    return any(os.access(os.path.join(p, name), os.X_OK) for p in os.environ.get("PATH", "").split(os.pathsep))


def free_port() -> int:
    """A port free on both TCP and UDP."""
    while True:
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


def servers(cert: str, key: str) -> dict[str, list[str]]:
    common = ["apps:app"]
    return {
        "pounce": ["-m", "pounce", *common, "--app-dir", str(BENCH_DIR), "--host", "127.0.0.1", "--port", "{port}",
                   "--ssl-certfile", cert, "--ssl-keyfile", key, "--http3", "--no-access-log",
                   "--log-level", "warning"],
        "hypercorn": ["-m", "hypercorn", *common, "--bind", "127.0.0.1:{port}", "--quic-bind", "127.0.0.1:{port}",
                      "--certfile", cert, "--keyfile", key, "--workers", "1", "--log-level", "warning"],
    }


def tree_cpu(root: int) -> float:
    """User + system seconds of ``root`` and its descendants."""
    total = 0.0
    pids = [root]
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    i = 0
    while i < len(pids):
        pids.extend(children.get(pids[i], []))
        i += 1
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


# -- the load client (its own process) ----------------------------------------------


async def client(port: int, conns: int, streams: int, duration: float, warmup: float) -> dict[str, Any]:
    from aioquic.asyncio.client import connect
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import DataReceived, HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration

    class Load(QuicConnectionProtocol):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            self.h3 = H3Connection(self._quic)
            self.waiting: dict[int, asyncio.Future[int]] = {}
            self.status: dict[int, int] = {}

        def quic_event_received(self, event: Any) -> None:
            for h3_event in self.h3.handle_event(event):
                sid = getattr(h3_event, "stream_id", None)
                if isinstance(h3_event, HeadersReceived):
                    self.status[sid] = int(dict(h3_event.headers)[b":status"])
                if isinstance(h3_event, (HeadersReceived, DataReceived)) and h3_event.stream_ended:
                    future = self.waiting.pop(sid, None)
                    if future is not None and not future.done():
                        future.set_result(self.status.pop(sid, 0))

        async def get(self) -> int:
            sid = self._quic.get_next_available_stream_id()
            self.h3.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"),
                                       (b":authority", b"bench"), (b":path", b"/")], end_stream=True)
            future = self.waiting[sid] = asyncio.get_running_loop().create_future()
            self.transmit()
            return await future

    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, verify_mode=ssl.CERT_NONE)
    state = {"counting": False, "stop": False, "done": 0, "errors": 0}

    async def run_connection() -> None:
        async with connect("127.0.0.1", port, configuration=config, create_protocol=Load) as proto:
            # A burst of responses must not overflow the client's socket (drops
            # would stall both servers on loss timers).
            sock = proto._transport.get_extra_info("socket")  # type: ignore[attr-defined]
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            async def loop() -> None:
                while not state["stop"]:
                    status = await proto.get()  # type: ignore[attr-defined]
                    if state["counting"]:
                        state["done" if status == 200 else "errors"] += 1
            await asyncio.gather(*(loop() for _ in range(streams)))

    tasks = [asyncio.create_task(run_connection()) for _ in range(conns)]
    await asyncio.sleep(warmup)
    cpu0 = time.process_time()
    print("measuring", flush=True)
    state["counting"] = True
    start = time.perf_counter()
    await asyncio.sleep(duration)
    state["counting"] = False
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    print("measured", flush=True)
    state["stop"] = True
    await asyncio.wait(tasks, timeout=10)
    return {"requests": state["done"], "errors": state["errors"], "seconds": elapsed,
            "client_cpu": cpu / elapsed}


# -- one round against one server -----------------------------------------------------


def run_round(name: str, argv: list[str], args: argparse.Namespace, log_dir: Path) -> dict[str, float]:
    port = free_port()
    log = open(log_dir / f"{name}-{port}.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen([*pin(SERVER_CPU), sys.executable, *(a.replace("{port}", str(port)) for a in argv)],
                              cwd=BENCH_DIR, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        _wait_tcp(port, server)
        load = subprocess.Popen(
            [*pin(CLIENT_CPU), sys.executable, __file__, "--client", str(port), "--conns", str(args.conns),
             "--streams", str(args.streams), "--duration", str(args.duration), "--warmup", str(args.warmup)],
            stdout=subprocess.PIPE, text=True)
        assert load.stdout is not None
        cpu_start = cpu_end = 0.0
        for line in load.stdout:
            if line.startswith("measuring"):
                cpu_start = tree_cpu(server.pid)
            elif line.startswith("measured"):
                cpu_end = tree_cpu(server.pid)
            elif line.startswith("{"):
                result = json.loads(line)
        load.wait(30)
        requests = max(1, result["requests"])
        return {"rps": result["requests"] / result["seconds"], "errors": result["errors"],
                "server_us_per_req": (cpu_end - cpu_start) / requests * 1e6,
                "server_cpu": (cpu_end - cpu_start) / result["seconds"], "client_cpu": result["client_cpu"]}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def _wait_tcp(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            time.sleep(0.3)  # the UDP side is bound before TCP accepts; let the loop settle
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("server did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--conns", type=int, default=8)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--servers", default="pounce,hypercorn")
    args = parser.parse_args()
    if args.client is not None:
        result = asyncio.run(client(args.client, args.conns, args.streams, args.duration, args.warmup))
        print(json.dumps(result), flush=True)
        return 0

    import trustme

    tmp = Path(tempfile.mkdtemp(prefix="h3bench-"))
    ca = trustme.CA()
    issued = ca.issue_cert("localhost", "127.0.0.1")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    cert.write_bytes(issued.cert_chain_pems[0].bytes())
    key.write_bytes(issued.private_key_pem.bytes())
    specs = servers(str(cert), str(key))
    names = [n for n in args.servers.split(",") if n]
    raw: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for round_no in range(args.rounds):
        for name in (names if round_no % 2 == 0 else list(reversed(names))):
            result = run_round(name, specs[name], args, tmp)
            raw[name].append(result)
            print(f"round {round_no + 1} {name}: {result['rps']:.0f} req/s, "
                  f"{result['server_us_per_req']:.0f} us/req server CPU, client CPU {result['client_cpu']:.0%}",
                  flush=True)
    rows = ["| server (HTTP/3, h3hello) | req/s | server CPU per request | server CPU | client CPU |",
            "|---|---|---|---|---|"]
    summary = {}
    for name in names:
        med = {k: statistics.median(r[k] for r in raw[name]) for k in raw[name][0]}
        summary[name] = med
        rows.append(f"| {name} | {med['rps']:,.0f} | {med['server_us_per_req']:,.0f} µs | "
                    f"{med['server_cpu']:.0%} | {med['client_cpu']:.0%} |")
    table = "\n".join(rows)
    print(f"\n{args.conns} connections x {args.streams} streams, {args.duration:g} s x {args.rounds} rounds, "
          "medians\n" + table)
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"h3-{stamp}.json").write_text(json.dumps({"args": vars(args), "raw": raw, "median": summary}, indent=1))
    (RESULTS / f"h3-{stamp}.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
