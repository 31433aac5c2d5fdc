"""Multi-worker benchmark: pounce with 1 and 2 workers (process and thread
mode) next to uvicorn --workers 1 and 2, in one run.

    .venv/bin/python benchmarks/workers.py [--rounds 3] [--duration 5] [--connections 64]
    .venv/bin/python benchmarks/workers.py --zero-drop 3   # client errors during restarts

Every contender serves ``benchmarks/apps.py`` (``GET /``, 13 bytes) over
HTTP/1.1 keep-alive; uvicorn runs its h11 + asyncio stack, the same protocol
library and loop as pounce. Load comes from wrk when installed (one thread),
else from a small Python client (much weaker: the figures then say more
about the client). Rounds rotate the order of the contenders and the table
shows medians, so a slow minute on a shared machine hits everyone.

With ``workers = 1`` pounce never starts the supervisor (the single-worker
fast path), so "1 worker" is the same server in both modes.

No pinning: two workers need both cores, which wrk shares. On a two-core
machine the second worker therefore adds less than a core; the ratio
against uvicorn, measured under the same conditions, is the figure to read.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Contender:
    name: str
    args: tuple[str, ...]


def contenders() -> list[Contender]:
    common = ("--host", "127.0.0.1", "--port", "{port}", "--no-access-log", "--log-level", "warning",
              "--backlog", "4096", "--timeout-keep-alive", "300")
    pounce = ("-m", "pounce", "apps:app", "--app-dir", str(BENCH_DIR), *common, "--loop", "asyncio")
    uvicorn = ("-m", "uvicorn", "apps:app", "--app-dir", str(BENCH_DIR), *common,
               "--http", "h11", "--loop", "asyncio")
    return [
        Contender("pounce 1 worker", (*pounce, "--workers", "1")),
        Contender("pounce 2 workers, process", (*pounce, "--workers", "2", "--worker-mode", "process")),
        Contender("pounce 2 workers, thread", (*pounce, "--workers", "2", "--worker-mode", "thread")),
        Contender("uvicorn 1 worker", (*uvicorn, "--workers", "1")),
        Contender("uvicorn 2 workers", (*uvicorn, "--workers", "2")),
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_ok(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        return sock.recv(64).startswith(b"HTTP/1.1 200")


def start(contender: Contender) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    args = [a.replace("{port}", str(port)) for a in contender.args]
    proc = subprocess.Popen([sys.executable, *args], cwd=BENCH_DIR, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{contender.name} exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            if http_ok(port):
                # Both workers of a multi-worker server must be up, not only
                # the first one to answer.
                time.sleep(1.5)
                return proc, port
        time.sleep(0.1)
    stop(proc)
    raise TimeoutError(f"{contender.name} did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def run_wrk(port: int, duration: float, connections: int) -> tuple[float, int]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, timeout=duration + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, errors + (int(bad.group(1)) if bad else 0)


def run_python(port: int, duration: float, connections: int) -> tuple[float, int]:
    """Fallback client: keep-alive connections from threads."""
    request = b"GET / HTTP/1.1\r\nHost: b\r\n\r\n"
    counts = [0] * connections
    errors = [0]
    deadline = time.monotonic() + duration

    def client(i: int) -> None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                while time.monotonic() < deadline:
                    sock.sendall(request)
                    data = b""
                    while b"Hello, world!" not in data:
                        chunk = sock.recv(4096)
                        if not chunk:
                            raise ConnectionError("closed")
                        data += chunk
                    counts[i] += 1
        except OSError:
            errors[0] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / duration, errors[0]


# -- zero-drop scenarios ---------------------------------------------------------------

READY_LINE = re.compile(r"worker (\d+) \(pid (\d+)\) ready")


def zero_drop(repeats: int) -> None:
    """Client-side error counts while the supervisor changes workers under load.

    The load generator is the supervisor tests' (``tests/apps/supervisorapps.py``):
    4 client threads, a fresh connection per request, ``GET /?sleep=0.02``.
    """
    import tempfile

    apps = BENCH_DIR.parent / "tests" / "apps"
    sys.path.insert(0, str(apps))
    from supervisorapps import Load

    env = dict(os.environ, PYTHONPATH=str(apps), PYTHONUNBUFFERED="1")
    scenarios = [
        ("rolling restart (SIGHUP)", "process", "hup", ()),
        ("rolling restart (SIGHUP)", "thread", "hup", ()),
        ("rolling restart (SIGHUP), --reuse-port", "process", "hup", ("--reuse-port",)),
        ("max_requests=60 recycling", "process", "none", ("--limit-max-requests", "60")),
        ("max_requests=60 recycling", "thread", "none", ("--limit-max-requests", "60")),
        ("SIGKILL one worker", "process", "kill", ()),
        ("SIGTERM shutdown", "process", "term", ()),
        ("SIGTERM shutdown", "thread", "term", ()),
    ]
    print("| scenario | mode | requests | errors before the event | in flight at the event | "
          "errors after the event (kinds) |")
    print("|---|---|---:|---|---|---|")
    for label, mode, event, extra in scenarios:
        totals: list[int] = []
        before: list[str] = []
        in_flight: list[str] = []
        after: list[str] = []
        for _ in range(repeats):
            with tempfile.TemporaryFile() as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "pounce", "supervisorapps:app", "--port", "0", "--workers", "2",
                     "--worker-mode", mode, *extra], env=env, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True)

                def output(log: Any = log) -> str:
                    log.seek(0)
                    return log.read().decode(errors="replace")

                deadline = time.monotonic() + 30
                while "serving with 2" not in output() and time.monotonic() < deadline:
                    time.sleep(0.05)
                url = re.search(r"listening on (\S+)", output()).group(1)  # type: ignore[union-attr]
                load = Load(url, seconds=4.0, concurrency=4)
                time.sleep(1.5)
                at = time.time()
                if event == "hup":
                    os.kill(proc.pid, signal.SIGHUP)
                elif event == "term":
                    os.kill(proc.pid, signal.SIGTERM)
                elif event == "kill":
                    os.kill(int(READY_LINE.findall(output())[0][1]), signal.SIGKILL)
                results = load.finish()
                stop(proc)
            if event == "none":  # recycling happens throughout: every request counts as "before"
                at = float("inf")
            totals.append(len(results))
            failed = [r for r in results if not r["ok"]]
            before.append(str(sum(r["start"] < at and r["end"] <= at for r in failed)))
            flight = [r for r in results if r["start"] < at < r["end"]]
            in_flight.append(f"{sum(not r['ok'] for r in flight)}/{len(flight)} failed")
            late = [r for r in failed if r["start"] >= at]
            kinds = collections.Counter(r["info"].split(":")[0] for r in late)
            after.append(str(len(late)) + (f" ({', '.join(f'{k} {n}' for k, n in kinds.items())})" if late else ""))
        print(f"| {label} | {mode} | {statistics.median(totals):.0f} | {', '.join(before)} | "
              f"{'; '.join(in_flight)} | {'; '.join(after)} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--zero-drop", type=int, metavar="REPEATS", default=0,
                        help="instead of throughput, count client errors in the supervisor scenarios")
    args = parser.parse_args()
    if args.zero_drop:
        zero_drop(args.zero_drop)
        return 0
    load = run_wrk if shutil.which("wrk") else run_python
    client = "wrk -t1" if load is run_wrk else "python threads"
    every = contenders()
    results: dict[str, list[float]] = {c.name: [] for c in every}
    errors: dict[str, int] = {c.name: 0 for c in every}
    for round_no in range(args.rounds):
        shift = round_no % len(every)
        for contender in every[shift:] + every[:shift]:
            proc, port = start(contender)
            try:
                load(port, 1.0, args.connections)  # warm-up
                rps, errs = load(port, args.duration, args.connections)
            finally:
                stop(proc)
            results[contender.name].append(rps)
            errors[contender.name] += errs
            print(f"round {round_no + 1}: {contender.name}: {rps:,.0f} req/s ({errs} errors)", file=sys.stderr)
    print(f"\n{client}, {args.connections} keep-alive connections, {args.duration:g}s x {args.rounds} rounds, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}\n")
    uvicorn2 = statistics.median(results["uvicorn 2 workers"])
    print("| server | req/s (median) | runs | vs uvicorn 2 workers | errors |")
    print("|---|---:|---|---:|---:|")
    for contender in every:
        runs = results[contender.name]
        median = statistics.median(runs)
        print(f"| {contender.name} | {median:,.0f} | {', '.join(f'{r:,.0f}' for r in runs)} | "
              f"{median / uvicorn2:.2f} | {errors[contender.name]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
