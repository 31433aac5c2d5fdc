"""HTTP/2 benchmark: pounce against hypercorn, uvicorn (when the installed
version has ``--http2``) and granian, on the same hello-world app
(``apps:app``), driven by h2load (Debian's nghttp2-client).

Scenarios (``--scenarios``):

- ``h2c``: cleartext HTTP/2 by prior knowledge, ``h2load -t1 -c64 -m10``
  (64 connections, 10 concurrent streams each);
- ``h2tls``: the same over TLS (ALPN h2), with a trustme certificate.

As in bench.py the server is pinned to CPU 0 and h2load to CPU 1, one
worker each, medians of ``--rounds`` rounds of ``--duration`` seconds (the
servers take turns inside each round). Results go to benchmarks/results/
as JSON and Markdown. Run with ``bash benchmarks/run.sh --h2``, which
installs the contenders into benchmarks/.venv::

    bash benchmarks/run.sh --h2 --rounds 3 --duration 5
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import BENCH_DIR, CLIENT_CPU, RESULTS, RunningServer, ServerSpec, machine_info, pin, save_run

SCENARIOS = {"h2c": "hello world over h2c, 64 conns x 10 streams",
             "h2tls": "hello world over TLS (h2), 64 conns x 10 streams"}


def _has_option(module: str, option: str) -> bool:
    try:
        out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return option in out.stdout


def specs(cert: Path, key: Path, tls: bool) -> dict[str, ServerSpec]:
    """The contenders, cleartext or TLS."""
    pounce = ["-m", "pounce", "apps:app", "--app-dir", str(BENCH_DIR), "--host", "127.0.0.1", "--port", "{port}",
              "--no-access-log", "--log-level", "warning", "--timeout-keep-alive", "300", "--backlog", "4096"]
    hypercorn = ["-m", "hypercorn", "apps:app", "--bind", "127.0.0.1:{port}", "--backlog", "4096",
                 "--keep-alive", "300", "--log-level", "warning"]
    granian = ["-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", "{port}",
               "--http", "2", "--no-ws", "--log-level", "warning", "apps:app"]
    uvicorn = ["-m", "uvicorn", "apps:app", "--app-dir", str(BENCH_DIR), "--host", "127.0.0.1",
               "--port", "{port}", "--no-access-log", "--log-level", "warning", "--http", "zttp", "--http2"]
    if tls:
        pounce += ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
        hypercorn += ["--certfile", str(cert), "--keyfile", str(key)]
        granian[-1:-1] = ["--ssl-certificate", str(cert), "--ssl-keyfile", str(key)]
        uvicorn += ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    out = {"pounce": ServerSpec("pounce", "pounce (h2)", tuple(pounce))}
    if _has_option("hypercorn", "--bind"):
        out["hypercorn"] = ServerSpec("hypercorn", "hypercorn (h2)", tuple(hypercorn))
    # (uvicorn's HTTP/2 runs on its zttp protocol, a parser with a Zig core.)
    if _has_option("uvicorn", "--http2") and importlib.util.find_spec("zttp") is not None:
        out["uvicorn"] = ServerSpec("uvicorn", "uvicorn --http zttp --http2", tuple(uvicorn))
    if _has_option("granian", "--interface"):
        out["granian"] = ServerSpec("granian", "granian --http 2", tuple(granian))
    return out


def wait_ready(server: RunningServer, url: str, timeout: float = 30.0) -> None:
    """h2load's own first request: some contenders speak HTTP/2 only."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.spec.name} exited: {server.log_path.read_text(errors='replace')[-1500:]}")
        out = subprocess.run(["h2load", "-n1", "-c1", url], capture_output=True, text=True, timeout=30)
        if "1 succeeded" in out.stdout:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{server.spec.name} did not answer h2load within {timeout}s")


_RPS = re.compile(r"finished in [\d.]+\w*, ([\d.]+) req/s")
_DONE = re.compile(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored")


def run_h2load(url: str, duration: float, warmup: float) -> dict[str, float]:
    cmd = [*pin(CLIENT_CPU), "h2load", "-t1", "-c64", "-m10", f"-D{duration:g}", f"--warm-up-time={warmup:g}",
           url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + warmup + 60)
    rps, done = _RPS.search(proc.stdout), _DONE.search(proc.stdout)
    if rps is None or done is None:
        raise RuntimeError(f"could not read h2load output:\n{proc.stdout[-1500:]}{proc.stderr[-500:]}")
    return {"rps": float(rps.group(1)), "succeeded": float(done.group(1)),
            "failed": float(done.group(2)), "errored": float(done.group(3))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--scenarios", default="h2c,h2tls", help=f"from {', '.join(SCENARIOS)}")
    parser.add_argument("--servers", default="", help="names to run (default: every one installed)")
    args = parser.parse_args(argv)
    if shutil.which("h2load") is None:
        raise SystemExit("h2load is not installed (apt-get install nghttp2-client; run.sh --h2 does it)")
    import trustme

    RESULTS.mkdir(exist_ok=True)
    raw: list[dict[str, dict[str, dict[str, float]]]] = []
    with tempfile.TemporaryDirectory(prefix="h2-bench-") as tmp:
        ca = trustme.CA()
        issued = ca.issue_cert("127.0.0.1", "localhost")
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert.write_bytes(b"".join(p.bytes() for p in issued.cert_chain_pems))
        key.write_bytes(issued.private_key_pem.bytes())
        scenarios = [s for s in args.scenarios.split(",") if s]
        for round_no in range(args.rounds):
            print(f"round {round_no + 1}/{args.rounds}", flush=True)
            results: dict[str, dict[str, dict[str, float]]] = {}
            for scenario in scenarios:
                tls = scenario == "h2tls"
                contenders = specs(cert, key, tls)
                names = [n for n in (args.servers.split(",") if args.servers else contenders) if n in contenders]
                order = names[round_no % len(names):] + names[:round_no % len(names)]
                for name in order:
                    server = RunningServer(contenders[name], Path(tmp))
                    url = f"{'https' if tls else 'http'}://127.0.0.1:{server.port}/"
                    try:
                        wait_ready(server, url)
                        result = run_h2load(url, args.duration, args.warmup)
                    except (RuntimeError, TimeoutError, subprocess.TimeoutExpired) as exc:
                        print(f"  {scenario} {name}: failed: {exc}", flush=True)
                        continue
                    finally:
                        server.stop()
                    results.setdefault(scenario, {})[contenders[name].label] = result
                    print(f"  {scenario} {name}: {result['rps']:,.0f} req/s "
                          f"({result['failed']:.0f} failed, {result['errored']:.0f} errored)", flush=True)
            raw.append(results)
    medians: dict[str, dict[str, float]] = {}
    for scenario in SCENARIOS:
        labels = {label for r in raw for label in r.get(scenario, {})}
        for label in labels:
            runs = [r[scenario][label]["rps"] for r in raw if label in r.get(scenario, {})]
            medians.setdefault(scenario, {})[label] = statistics.median(runs)
    lines = []
    for scenario, rows in medians.items():
        base = rows.get("hypercorn (h2)")
        lines += [f"\n### {SCENARIOS[scenario]}\n", "| server | req/s (median) | vs hypercorn |", "|---|---:|---:|"]
        for label, rps in sorted(rows.items(), key=lambda item: -item[1]):
            ratio = f"{rps / base:.2f}x" if base else "-"
            lines.append(f"| {label} | {rps:,.0f} | {ratio} |")
    text = "\n".join(lines)
    print(text)
    save_run("h2", machine_info(extra=("h2",)), args, raw, medians, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
