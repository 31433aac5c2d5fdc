"""Interpreter, process and thread workers side by side: throughput and memory.

    python benchmarks/worker_modes.py [--duration 5] [--rounds 3] [--memory-workers 1 2 4]

Needs Python 3.14+ for interpreter mode (here: ``bash scripts/sid-pythons.sh
3.14 --exec python benchmarks/worker_modes.py``) and wrk on PATH.

- Throughput: ``benchmarks/apps.py`` hello world (13 bytes, keep-alive), 2
  workers, wrk with one thread and 64 connections, pinned to CPU 1 with
  taskset as bench.py pins it. Measured twice: with the server pinned to
  CPU 0, as bench.py does (per-core cost: both workers share one core), and
  with the server free on both cores (what two workers are for; wrk then
  shares CPU 1 with one of them). Rounds rotate the order of the modes; the
  table shows medians.
- Memory of the whole server, after 2 s of the same load: the sum over the
  server and its child processes of VmRSS (what ``ps`` shows, which counts
  pages shared between processes once per process) and of Pss from
  ``/proc/PID/smaps_rollup`` (shared pages split between the processes that
  map them, so the sum is what the server costs the machine).

Ask nothing else of the machine meanwhile: the figures are only as quiet as
the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from bench import free_port, http_get_ok, parse_wrk, pin, process_tree  # noqa: E402

MODES = ("interpreter", "process", "thread")


def start(mode: str, workers: int, port: int, cpus: str | None) -> subprocess.Popen[bytes]:
    prefix = ["taskset", "-c", cpus] if cpus else []
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "pounce", "apps:app", "--app-dir", str(BENCH_DIR),
         "--port", str(port), "--workers", str(workers), "--worker-mode", mode,
         "--no-access-log", "--log-level", "warning", "--timeout-keep-alive", "30", "--backlog", "4096"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_ready(proc: subprocess.Popen[bytes], port: int, workers: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if http_get_ok(port):
                break
        except OSError:
            pass
        time.sleep(0.05)
    else:
        raise RuntimeError("server did not start")
    # Let every worker come up (the first answer may come from the first one).
    time.sleep(0.5 + 0.2 * workers)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait(5)


def wrk(port: int, seconds: int, conns: int = 64) -> dict[str, float]:
    cmd = [*pin(1), "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{port}/"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, check=True)
    return parse_wrk(out.stdout)


def memory_kib(root: int) -> tuple[int, int]:
    rss = pss = 0
    for pid in process_tree(root):
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
    return rss, pss


def throughput(duration: int, rounds: int, server_cpus: str | None) -> dict[str, float]:
    runs: dict[str, list[float]] = {m: [] for m in MODES}
    for r in range(rounds):
        for mode in MODES[r % len(MODES):] + MODES[: r % len(MODES)]:
            port = free_port()
            proc = start(mode, 2, port, server_cpus)
            try:
                wait_ready(proc, port, 2)
                wrk(port, 1)  # warm-up
                result = wrk(port, duration)
                if result.get("errors"):
                    raise RuntimeError(f"{mode}: {result['errors']} errors")
                runs[mode].append(result["rps"])
            finally:
                stop(proc)
    return {m: statistics.median(v) for m, v in runs.items()}


def memory(workers_list: list[int]) -> dict[tuple[str, int], tuple[int, int]]:
    out: dict[tuple[str, int], tuple[int, int]] = {}
    for workers in workers_list:
        for mode in MODES:
            if workers == 1 and mode != MODES[0]:
                continue  # one worker: no supervisor, the same server in every mode
            port = free_port()
            proc = start(mode, workers, port, None)
            try:
                wait_ready(proc, port, workers)
                wrk(port, 2)
                out[(mode, workers)] = memory_kib(proc.pid)
            finally:
                stop(proc)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory-workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for label, cpus in (("server on CPU 0", "0"), ("server on both CPUs", None)):
        medians = throughput(args.duration, args.rounds, cpus)
        print(f"\nhello world, 2 workers, {label}, wrk -t1 -c64 on CPU 1 "
              f"(median of {args.rounds} x {args.duration}s):")
        for mode, rps in medians.items():
            print(f"  {mode:<12} {rps:>10,.0f} req/s")
    print("\nmemory of the whole server after 2 s of load (KiB; RSS summed over processes / PSS):")
    for (mode, workers), (rss, pss) in memory(args.memory_workers).items():
        name = "any (1 worker)" if workers == 1 else mode
        print(f"  {name:<15} {workers} workers  RSS {rss:>8,}  PSS {pss:>8,}")


if __name__ == "__main__":
    main()
