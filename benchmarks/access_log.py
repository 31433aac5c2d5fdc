"""What the access log costs: requests/second with it on and off, in one run.

    .venv/bin/python benchmarks/access_log.py [--rounds 5] [--duration 5]
                                              [--connections 32] [--format text|json]

Method, and why:

- The same single-worker pounce serves ``benchmarks/apps.py`` (13-byte hello)
  in three modes: access log off, on with the text format, on with the JSON
  format. The log goes to a real file, as it would in production (a terminal
  would measure the terminal).
- Modes alternate inside each round (order rotated every round) and the
  medians are reported: a slow minute on a shared machine hits every mode.
- Load comes from wrk (``apt-get install wrk``) with one thread; without wrk
  a small asyncio keep-alive client in this file stands in (it reports lower
  absolute figures, the ratio is what matters). Where ``taskset`` exists the
  server runs on CPU 0 and the client on CPU 1.
- After each run the log file's access lines are counted against the
  requests the client saw, so a mode that silently drops lines cannot win.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent

MODES: dict[str, list[str]] = {
    "off": ["--no-access-log"],
    "text": ["--access-log", "--log-format", "text"],
    "json": ["--access-log", "--log-format", "json"],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(cpu: int, argv: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu), *argv]
    return argv


def start_server(mode: str, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-m", "pounce", "apps:app", "--app-dir", str(BENCH_DIR),
        "--host", "127.0.0.1", "--port", str(port), "--timeout-keep-alive", "300",
        *MODES[mode],
    ]
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child, closed below
    proc = subprocess.Popen(pinned(0, argv), stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=REPO)
    log.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"pounce exited: {log_path.read_text()}") from None
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("pounce did not start")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


_WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_TOTAL = re.compile(r"(\d+) requests in")


def run_wrk(port: int, duration: float, connections: int) -> tuple[float, int]:
    out = subprocess.run(
        pinned(1, ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", f"http://127.0.0.1:{port}/"]),
        capture_output=True, text=True, timeout=duration + 60, check=True,
    ).stdout
    rps = _WRK_RPS.search(out)
    total = _WRK_TOTAL.search(out)
    if not rps or not total:
        raise RuntimeError(f"cannot read wrk output:\n{out}")
    return float(rps.group(1)), int(total.group(1))


_REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


async def _client(port: int, stop_at: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    buffered = b""
    try:
        while time.monotonic() < stop_at:
            writer.write(_REQUEST)
            while True:
                head_end = buffered.find(b"\r\n\r\n")
                if head_end >= 0:
                    length = int(re.search(rb"content-length: *(\d+)", buffered[:head_end], re.I).group(1))  # type: ignore[union-attr]
                    end = head_end + 4 + length
                    if len(buffered) >= end:
                        buffered = buffered[end:]
                        break
                data = await reader.read(65536)
                if not data:
                    return
                buffered += data
            counts[0] += 1
    finally:
        writer.close()


def run_python_client(port: int, duration: float, connections: int) -> tuple[float, int]:
    """Fallback load generator: keep-alive connections, one request in flight each."""

    async def main() -> int:
        counts = [0]
        stop_at = time.monotonic() + duration
        await asyncio.gather(*(_client(port, stop_at, counts) for _ in range(connections)))
        return counts[0]

    started = time.monotonic()
    total = asyncio.run(main())
    return total / (time.monotonic() - started), total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(mode: str, duration: float, connections: int, workdir: Path) -> tuple[float, float]:
    """(requests/second, server CPU microseconds per request) for one mode.

    CPU time per request is the steadier figure on a shared machine: other
    load slows the wall clock but barely changes what each request costs.
    """
    port = free_port()
    log_path = workdir / f"{mode}.log"
    proc = start_server(mode, port, log_path)
    try:
        cpu_before = cpu_seconds(proc.pid)
        if shutil.which("wrk"):
            rps, total = run_wrk(port, duration, connections)
        else:
            rps, total = run_python_client(port, duration, connections)
        cpu_used = cpu_seconds(proc.pid) - cpu_before
    finally:
        stop_server(proc)
    lines = log_path.read_text(errors="replace").count("GET / HTTP/1.1")
    if mode == "off" and lines:
        raise RuntimeError(f"access log off but {lines} access lines written")
    if mode != "off" and lines < total:
        raise RuntimeError(f"{mode}: {total} requests answered but only {lines} access lines")
    return rps, cpu_used / max(total, 1) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--modes", default="off,text,json", help="comma-separated: off,text,json")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    results: dict[str, list[float]] = {m: [] for m in modes}
    costs: dict[str, list[float]] = {m: [] for m in modes}
    client = "wrk -t1" if shutil.which("wrk") else "python asyncio client"
    print(f"# access log cost: {args.rounds} rounds x {args.duration}s, {args.connections} connections, {client}")
    with tempfile.TemporaryDirectory(prefix="pounce-accesslog-") as tmp:
        for index in range(args.rounds):
            order = modes[index % len(modes):] + modes[:index % len(modes)]
            for mode in order:
                rps, cost = measure(mode, args.duration, args.connections, Path(tmp))
                results[mode].append(rps)
                costs[mode].append(cost)
                print(f"round {index + 1} {mode:>4}: {rps:10.0f} req/s {cost:8.1f} us CPU/request", flush=True)
    base = statistics.median(results["off"]) if "off" in results else None
    base_cost = statistics.median(costs["off"]) if "off" in costs else None
    print("\n| access log | median req/s | vs off | median server CPU us/request | vs off | req/s per round |")
    print("|---|---|---|---|---|---|")
    for mode in modes:
        median = statistics.median(results[mode])
        cost = statistics.median(costs[mode])
        ratio = f"{median / base:.3f}" if base else "-"
        cost_ratio = f"{cost / base_cost:.3f}" if base_cost else "-"
        runs = ", ".join(f"{r:.0f}" for r in results[mode])
        print(f"| {mode} | {median:.0f} | {ratio} | {cost:.1f} | {cost_ratio} | {runs} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
