"""Static files and compression: pounce's plugins against what people use.

Scenarios (wrk, one connection count each, server on CPU 0 and wrk on CPU 1
as in bench.py; alternating rounds, medians):

- ``static4k`` / ``static1m``: ``GET`` of a 4 KiB and a 1 MiB file, served by
  pounce's ``static`` plugin, by Starlette ``StaticFiles`` under pounce, under
  uvicorn (h11 and httptools+uvloop), and by granian's
  ``--static-path-route``. Starlette's ``FileResponse`` switches to
  ``http.response.pathsend`` wherever a server advertises it.
- ``json64k``: a 64 KiB JSON response (one body message), with
  ``Accept-Encoding`` set to one coding per row: pounce with compression off,
  enabled but not asked for, and each of zstd, br, gzip (level 6, the
  default, and 9, Starlette's); uvicorn plain, and uvicorn with Starlette's
  ``GZipMiddleware``. Beside req/s: the bytes of one response on the wire
  (head and body).

Run it in the benchmark venv (``bash benchmarks/run.sh`` builds it with
Starlette, granian, brotli and zstandard)::

    bash benchmarks/run.sh --files [--rounds 5] [--duration 5] [--scenarios static4k,json64k]

Results: ``benchmarks/results/files-<time>.{json,md}``; the table is printed.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import CLIENT_CPU, RESULTS, RunningServer, ServerSpec, machine_info, parse_wrk, pin, save_run

BENCH_DIR = Path(__file__).resolve().parent
COMMON = ("--host", "127.0.0.1", "--port", "{port}")


def _pounce(*extra: str, app: str = "files_apps:plain") -> tuple[str, ...]:
    return ("-m", "pounce", app, "--app-dir", str(BENCH_DIR), *COMMON, "--no-access-log",
            "--log-level", "warning", "--timeout-keep-alive", "300", "--backlog", "4096", *extra)


def _uvicorn(app: str, http: str = "h11", loop: str = "asyncio") -> tuple[str, ...]:
    return ("-m", "uvicorn", app, "--app-dir", str(BENCH_DIR), *COMMON, "--http", http, "--loop", loop,
            "--no-access-log", "--log-level", "warning", "--timeout-keep-alive", "300",
            "--backlog", "4096")


@dataclass(frozen=True)
class Row:
    """One line of a table: a server, and the request header wrk sends."""

    server: str
    label: str
    accept: str | None = None


@dataclass(frozen=True)
class FileScenario:
    name: str
    title: str
    path: str
    conns: int
    rows: tuple[Row, ...]


def specs(files: Path, gzip9: Path) -> dict[str, ServerSpec]:
    static = f"/static={files}"
    granian = ("-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", "{port}",
               "--workers", "1", "--no-ws", "--log-level", "warning",
               "--static-path-route", "/static", "--static-path-mount", str(files), "files_apps:plain")
    return {s.name: s for s in (
        ServerSpec("pounce-static", "pounce + static plugin", _pounce("--static", static)),
        ServerSpec("pounce-starlette", "pounce + Starlette StaticFiles", _pounce(app="files_apps:starlette_static")),
        ServerSpec("uvicorn-h11-starlette", "uvicorn h11 + Starlette StaticFiles",
                   _uvicorn("files_apps:starlette_static")),
        ServerSpec("uvicorn-fast-starlette", "uvicorn httptools+uvloop + Starlette StaticFiles",
                   _uvicorn("files_apps:starlette_static", "httptools", "uvloop")),
        ServerSpec("granian-static", "granian --static-path-route", granian),
        ServerSpec("pounce-plain", "pounce, compression disabled", _pounce()),
        ServerSpec("pounce-compress", "pounce --compression", _pounce("--compression")),
        ServerSpec("pounce-gzip9", "pounce --compression, gzip_level 9",
                   _pounce("--compression", "--config", str(gzip9))),
        ServerSpec("uvicorn-plain", "uvicorn h11", _uvicorn("files_apps:plain")),
        ServerSpec("uvicorn-gzip", "uvicorn h11 + Starlette GZipMiddleware", _uvicorn("files_apps:starlette_gzip")),
    )}


STATIC_ROWS = (
    Row("pounce-static", "pounce static plugin"),
    Row("pounce-starlette", "pounce + Starlette StaticFiles"),
    Row("uvicorn-h11-starlette", "uvicorn h11 + Starlette StaticFiles"),
    Row("uvicorn-fast-starlette", "uvicorn httptools+uvloop + Starlette StaticFiles"),
    Row("granian-static", "granian --static-path-route"),
)
SCENARIOS = {s.name: s for s in (
    FileScenario("static4k", "4 KiB file, 64 conns", "/static/4k.bin", 64, STATIC_ROWS),
    FileScenario("static1m", "1 MiB file, 16 conns", "/static/1m.bin", 16, STATIC_ROWS),
    FileScenario("json64k", "64 KiB JSON, 64 conns", "/json", 64, (
        Row("pounce-plain", "pounce, compression disabled", "gzip, br, zstd"),
        Row("pounce-compress", "pounce, enabled, identity asked", None),
        Row("pounce-compress", "pounce zstd (level 3)", "zstd"),
        Row("pounce-compress", "pounce br (quality 4)", "br"),
        Row("pounce-compress", "pounce gzip (level 6)", "gzip"),
        Row("pounce-gzip9", "pounce gzip (level 9)", "gzip"),
        Row("uvicorn-plain", "uvicorn h11, no compression", None),
        Row("uvicorn-gzip", "uvicorn h11 + Starlette GZipMiddleware (level 9)", "gzip"),
    )),
)}


def make_files(root: Path) -> None:
    (root / "4k.bin").write_bytes(os.urandom(4096))
    (root / "1m.bin").write_bytes(os.urandom(1024 * 1024))


def wire_bytes(port: int, path: str, accept: str | None) -> tuple[int, int]:
    """(bytes of the whole response, bytes of its body) for one request."""
    head = f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
    if accept:
        head += f"Accept-Encoding: {accept}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall((head + "\r\n").encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = data.split(b"\r\n", 1)[0]
    if b" 200 " not in status + b" ":
        raise RuntimeError(f"{path}: {status!r}")
    return len(data), len(data) - data.index(b"\r\n\r\n") - 4


def run_wrk(port: int, path: str, conns: int, duration: float, accept: str | None) -> dict[str, float]:
    cmd = [*pin(CLIENT_CPU), "wrk", "-t1", f"-c{conns}", f"-d{max(1, round(duration))}s", "--latency",
           "--timeout", "10s"]
    if accept:
        cmd += ["-H", f"Accept-Encoding: {accept}"]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout[:500]}")
    return parse_wrk(proc.stdout)


def measure_round(scenarios: list[FileScenario], server_specs: dict[str, ServerSpec], order: list[str],
                  args: argparse.Namespace, log_dir: Path) -> dict[str, dict[str, dict[str, float]]]:
    """One round: each server started once, every row of it measured."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name in order:
        rows = [(sc, row) for sc in scenarios for row in sc.rows if row.server == name]
        if not rows:
            continue
        server = RunningServer(server_specs[name], log_dir)
        try:
            server.wait_ready()
            for sc, row in rows:
                total, body = wire_bytes(server.port, sc.path, row.accept)
                run_wrk(server.port, sc.path, sc.conns, args.warmup, row.accept)  # warm-up
                result = run_wrk(server.port, sc.path, sc.conns, args.duration, row.accept)
                result.update(wire=total, body=body)
                out.setdefault(sc.name, {})[row.label] = result
                print(f"  {sc.name:9} {row.label:52} {result['rps']:10.0f} req/s  {body:8d} B body"
                      + (f"  ({int(result['errors'])} errors)" if result.get("errors") else ""), flush=True)
        except Exception as exc:  # one broken contender must not lose the others' figures
            print(f"  {name}: failed: {exc}", file=sys.stderr, flush=True)
        finally:
            server.stop()
    return out


def table(medians: dict[str, dict[str, dict[str, float]]], scenarios: list[FileScenario]) -> str:
    lines = []
    for sc in scenarios:
        rows = medians.get(sc.name, {})
        if not rows:
            continue
        lines += [f"\n### {sc.name}: {sc.title}\n", "| server | Accept-Encoding | req/s | p99 ms | body bytes | wire bytes |",
                  "|---|---|---:|---:|---:|---:|"]
        for row in sc.rows:
            r = rows.get(row.label)
            if r is None:
                continue
            lines.append(f"| {row.label} | {row.accept or '-'} | {r['rps']:,.0f} | {r.get('p99_ms', 0):.2f} "
                         f"| {int(r['body']):,} | {int(r['wire']):,} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"from {', '.join(SCENARIOS)}")
    args = parser.parse_args(argv)
    scenarios = [SCENARIOS[name] for name in args.scenarios.split(",") if name]
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="files-bench-") as tmp:
        files = Path(tmp) / "files"
        files.mkdir()
        make_files(files)
        gzip9 = Path(tmp) / "gzip9.toml"
        gzip9.write_text("[compression]\ngzip_level = 9\n")
        os.environ["FILES_BENCH_DIR"] = str(files)  # for files_apps.starlette_static
        server_specs = specs(files, gzip9)
        names = list(dict.fromkeys(row.server for sc in scenarios for row in sc.rows))
        raw: list[dict[str, dict[str, dict[str, float]]]] = []
        for round_no in range(args.rounds):
            order = names[round_no % len(names):] + names[:round_no % len(names)]
            print(f"round {round_no + 1}/{args.rounds}", flush=True)
            raw.append(measure_round(scenarios, server_specs, order, args, Path(tmp)))
    medians: dict[str, dict[str, dict[str, float]]] = {}
    for sc in scenarios:
        for row in sc.rows:
            runs = [r[sc.name][row.label] for r in raw if row.label in r.get(sc.name, {})]
            if runs:
                medians.setdefault(sc.name, {})[row.label] = {
                    key: statistics.median(run[key] for run in runs if key in run) for key in runs[0]}
    text = table(medians, scenarios)
    print(text)
    save_run("files", machine_info(extra=("brotli", "zstandard")), args, raw, medians, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
