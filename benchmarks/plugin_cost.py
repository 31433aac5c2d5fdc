"""What each operations plugin costs per request: pounce with it on and off.

    .venv/bin/python benchmarks/plugin_cost.py [--rounds 5] [--duration 5]
                                               [--connections 32] [--modes ...]

Method, as ``benchmarks/access_log.py`` (whose helpers this uses), and why:

- One single-worker pounce serves ``benchmarks/apps.py`` (13-byte hello) per
  mode: no plugin configured (``baseline``), then each plugin configured
  alone, then the built-ins together. The access log is off in every mode,
  so that only the plugin differs.
- Server on CPU 0, wrk (``-t1``) on CPU 1, pinned with ``taskset``; modes
  alternate inside each round, order rotated every round, medians reported.
- The figure that matters is the server's CPU time per request (from
  ``/proc``): other load on a shared machine slows the wall clock but barely
  changes what a request costs. "µs added" is a mode's median minus the
  baseline's.
- ``rate_limit`` runs with a rate no client reaches, so every request goes
  through the bucket and none is refused (a refused one would be cheaper);
  any non-2xx response fails the run.
- The OpenTelemetry modes (when pounce-opentelemetry is installed) export
  spans and metrics over OTLP/HTTP to a sink in this process that answers
  every export with 200: ``otel-sampled`` samples every request,
  ``otel-unsampled`` none (``always_off``: context propagation and metrics
  only).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from access_log import BENCH_DIR, REPO, cpu_seconds, free_port, pinned  # noqa: E402

HUGE = "1000000000"

# mode -> (pounce flags, extra environment)
MODES: dict[str, tuple[list[str], dict[str, str]]] = {
    "baseline": ([], {}),
    "health": (["--health-path", "/healthz", "--health-ready-path", "/readyz"], {}),
    "request_id": (["--request-id"], {}),
    "rate_limit": (["--rate-limit", HUGE, "--rate-limit-burst", HUGE], {}),
    "server_timing": (["--server-timing"], {}),
    "builtins": (["--health-path", "/healthz", "--health-ready-path", "/readyz", "--request-id",
                  "--rate-limit", HUGE, "--rate-limit-burst", HUGE, "--server-timing"], {}),
    "otel-sampled": (["--plugin", "opentelemetry"], {"OTEL_TRACES_SAMPLER": "always_on"}),
    "otel-unsampled": (["--plugin", "opentelemetry"], {"OTEL_TRACES_SAMPLER": "always_off"}),
}


def otel_installed() -> bool:
    probe = [sys.executable, "-c", "import pounce_opentelemetry, opentelemetry.exporter.otlp.proto.http"]
    return subprocess.run(probe, capture_output=True).returncode == 0


class Sink:
    """An OTLP/HTTP endpoint that drops what it gets and says 200."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("content-length", "0")))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_server(mode: str, port: int, log_path: Path, sink: Sink | None) -> subprocess.Popen[bytes]:
    flags, extra_env = MODES[mode]
    argv = [
        sys.executable, "-m", "pounce", "apps:app", "--app-dir", str(BENCH_DIR),
        "--host", "127.0.0.1", "--port", str(port), "--timeout-keep-alive", "300",
        "--no-access-log", "--log-level", "warning", *flags,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POUNCE_", "OTEL_"))}
    env.update(extra_env)
    if sink is not None:
        env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint, "OTEL_SERVICE_NAME": "pounce-bench"})
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child, closed below
    proc = subprocess.Popen(pinned(0, argv), stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=REPO, env=env)
    log.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"pounce exited ({mode}): {log_path.read_text()}") from None
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"pounce did not start ({mode})")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def run_wrk(port: int, duration: float, connections: int) -> tuple[float, int]:
    out = subprocess.run(
        pinned(1, ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s",
                   f"http://127.0.0.1:{port}/"]),
        capture_output=True, text=True, timeout=duration + 60, check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx responses during the run (a limit was hit?):\n{out}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if not rps or not total:
        raise RuntimeError(f"cannot read wrk output:\n{out}")
    return float(rps.group(1)), int(total.group(1))


def measure(mode: str, duration: float, connections: int, workdir: Path, sink: Sink | None) -> tuple[float, float]:
    """(requests/second, server CPU microseconds per request) for one mode."""
    port = free_port()
    proc = start_server(mode, port, workdir / f"{mode}.log", sink if mode.startswith("otel") else None)
    try:
        before = cpu_seconds(proc.pid)
        rps, total = run_wrk(port, duration, connections)
        used = cpu_seconds(proc.pid) - before
    finally:
        stop_server(proc)
    return rps, used / max(total, 1) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, from: " + ", ".join(MODES))
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk, or benchmarks/run.sh)")
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise SystemExit(f"unknown mode {unknown[0]!r}; choose from {', '.join(MODES)}")
    if "baseline" not in modes:
        modes.insert(0, "baseline")
    if any(m.startswith("otel") for m in modes) and not otel_installed():
        print("# pounce-opentelemetry[otlp] is not installed: skipping the otel modes")
        modes = [m for m in modes if not m.startswith("otel")]
    sink = Sink() if any(m.startswith("otel") for m in modes) else None
    rps: dict[str, list[float]] = {m: [] for m in modes}
    cost: dict[str, list[float]] = {m: [] for m in modes}
    print(f"# plugin cost: {args.rounds} rounds x {args.duration:g}s, {args.connections} connections, "
          f"wrk -t1, server pinned to CPU 0, wrk to CPU 1")
    try:
        with tempfile.TemporaryDirectory(prefix="pounce-plugincost-") as tmp:
            for index in range(args.rounds):
                shift = index % len(modes)
                for mode in modes[shift:] + modes[:shift]:
                    r, c = measure(mode, args.duration, args.connections, Path(tmp), sink)
                    rps[mode].append(r)
                    cost[mode].append(c)
                    print(f"round {index + 1} {mode:>14}: {r:9.0f} req/s {c:8.1f} us CPU/request", flush=True)
    finally:
        if sink is not None:
            sink.close()
    base_rps = statistics.median(rps["baseline"])
    base_cost = statistics.median(cost["baseline"])
    print("\n| mode | median req/s | vs baseline | median server CPU us/request | us added per request |")
    print("|---|---|---|---|---|")
    for mode in modes:
        median_rps = statistics.median(rps[mode])
        median_cost = statistics.median(cost[mode])
        added = "-" if mode == "baseline" else f"{median_cost - base_cost:+.1f}"
        print(f"| {mode} | {median_rps:.0f} | {median_rps / base_rps:.3f} | {median_cost:.1f} | {added} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
