"""Supervisor as users run it: ``pounce --workers N`` in a subprocess, signals
with os.kill, a load generator in another process counting client errors.

The tests that hold for every worker that imports the app itself run in
process mode and, on Python 3.14+, in interpreter mode (``MODES``)."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from supervisorapps import Load

from pounce.testing import ServerProcess, run_pounce, wait_for
from tests.helpers import APPS, holds, listeners

PYTHONPATH = str(APPS)

READY = re.compile(r"worker (\d+) \((pid|interpreter) (\d+)\) ready")

needs_interpreters = pytest.mark.skipif(sys.version_info < (3, 14), reason="interpreter workers need Python 3.14+")
MODES = ["process", pytest.param("interpreter", marks=needs_interpreters)]


def start(pounce_process: Any, *args: str) -> ServerProcess:
    return pounce_process("supervisorapps:app", "--port", "0", *args,
                          env={"PYTHONPATH": PYTHONPATH})


def ready_workers(proc: ServerProcess) -> dict[int, str]:
    """worker id -> where it runs (as the app's ``where()`` says it: a pid, or
    ``PID/ID`` for an interpreter) of every worker that became ready so far."""
    assert proc.proc is not None
    return {int(w): p if kind == "pid" else f"{proc.proc.pid}/{p}"
            for w, kind, p in READY.findall(proc.output())}


def ready_at(output: str, worker_id: int) -> int:
    """Where in ``output`` worker ``worker_id`` said it was ready."""
    match = re.search(rf"worker {worker_id} \([^)]*\) ready", output)
    assert match, output
    return match.start()


def wait_output(proc: ServerProcess, predicate: Any, timeout: float = 20.0, what: str = "output") -> None:
    wait_for(lambda: predicate(proc.output()), timeout, what=lambda: f"{what}:\n{proc.output()}")


def answered(proc: ServerProcess) -> int:
    """Requests answered 200 so far (the access log lines in the output)."""
    return proc.output().count('HTTP/1.1" 200')


def wait_ready(proc: ServerProcess, count: int, timeout: float = 20.0) -> None:
    wait_output(proc, lambda out: len(READY.findall(out)) >= count, timeout, f"{count} ready workers")


@pytest.mark.slow
def test_workers_zero_or_negative_is_a_config_error() -> None:
    for value in ("0", "-1"):
        result = run_pounce(["testapps:hello", "--workers", value])
        assert result.returncode == 2, result.stderr
        assert "workers" in result.stderr
    result = run_pounce(["testapps:hello", "--workers", "auto", "--check"])
    assert result.returncode == 0, result.stderr
    assert re.search(r'workers = "?auto"?', result.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_workers_serve_and_sigterm_exits_0(pounce_process: Any, mode: str) -> None:
    proc = start(pounce_process, "--workers", "2", "--worker-mode", mode)
    wait_ready(proc, 2)
    load = Load(proc.url, seconds=2.0, concurrency=4, path="/?sleep=0.3")
    try:
        wait_output(proc, lambda out: answered(proc) >= 8, what="the load to get going")
        signalled = time.time()
        proc.signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        results = load.finish()
    finally:
        load.kill()
    workers = set(ready_workers(proc).values())
    assert len(workers) == 2 and proc.proc is not None and str(proc.proc.pid) not in workers
    assert load.pids() <= workers  # the kernel decides which worker accepts: maybe only one
    # Every request the server had accepted before the signal was answered.
    # (A request sent in the last 100 ms may still sit in the kernel's queue
    # when the workers stop accepting: those are not counted as accepted.)
    accepted = [r for r in results if r["start"] < signalled - 0.1]
    assert accepted and [r for r in accepted if not r["ok"]] == []
    # Requests inside the app when the signal came were finished, not cut.
    in_flight = [r for r in results if r["start"] < signalled < r["end"]]
    assert in_flight and any(r["ok"] for r in in_flight)
    assert all(r["ok"] for r in in_flight if r["start"] < signalled - 0.1)
    output = proc.output()
    assert "draining (shutdown)" in output and output.count("exited (shutdown, exit code 0)") == 2


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_sighup_rolling_restart_drops_nothing(pounce_process: Any, mode: str) -> None:
    proc = start(pounce_process, "--workers", "2", "--worker-mode", mode)
    wait_ready(proc, 2)
    old = set(ready_workers(proc).values())
    load = Load(proc.url, seconds=4.0, concurrency=4)
    try:
        wait_output(proc, lambda out: answered(proc) >= 20, what="the load to get going")
        proc.signal(signal.SIGHUP)
        signalled = time.time()
        wait_output(proc, lambda out: out.count("exited (restart") == 2, what="old workers to exit")
        results = load.finish()
    finally:
        load.kill()
    assert len(results) > 50
    assert load.errors() == []
    new = set(ready_workers(proc).values()) - old
    assert len(new) == 2
    late = load.pids(after=signalled + 2.0)
    assert late and late <= new
    output = proc.output()
    assert "rolling restart of 2 workers" in output
    # Replacement first: a new worker was ready before the first old one drained.
    assert output.index("worker 3 (") < output.index("draining (restart)")
    first_drain = output.index("draining (restart)")
    assert min(ready_at(output, w) for w, p in ready_workers(proc).items() if p in new) < first_drain


@pytest.mark.slow
def test_sigkill_one_worker_loses_only_its_in_flight_requests(pounce_process: Any) -> None:
    proc = start(pounce_process, "--workers", "2", "--worker-mode", "process")
    wait_ready(proc, 2)
    victim = int(ready_workers(proc)[1])
    load = Load(proc.url, seconds=4.0, concurrency=4, path="/?sleep=0.05")
    try:
        wait_output(proc, lambda out: answered(proc) >= 20, what="the load to get going")
        os.kill(victim, signal.SIGKILL)
        killed = time.time()
        wait_ready(proc, 3)
        load.finish()
    finally:
        load.kill()
    errors = load.errors()
    # At most the requests in flight inside the killed worker: one per client thread.
    assert len(errors) <= load.concurrency, errors
    assert all(abs(e["end"] - killed) < 1.0 for e in errors), errors
    assert load.pids(after=killed + 0.5) and str(victim) not in load.pids(after=killed + 0.5)
    output = proc.output()
    assert f"worker 1 (pid {victim}) died (killed by SIGKILL)" in output
    assert proc.proc is not None and proc.proc.poll() is None


@pytest.mark.slow
@pytest.mark.parametrize("mode", [*MODES, "thread"])
def test_a_crashing_worker_is_contained_and_replaced(pounce_process: Any, mode: str) -> None:
    proc = start(pounce_process, "--workers", "2", "--worker-mode", mode)
    wait_output(proc, lambda out: f"serving with 2 {mode} workers" in out, what="workers")
    load = Load(proc.url, seconds=3.0, concurrency=4, path="/?sleep=0.05")
    try:
        wait_output(proc, lambda out: answered(proc) >= 20, what="the load to get going")
        from supervisorapps import _one

        host, port = proc.url.split("//")[1].rsplit(":", 1)
        crashed = time.time()
        _one(host, int(port), "/die")  # stops the event loop of whichever worker takes it
        wait_output(proc, lambda out: " died (exit code 1: " in out, what="the worker to die")
        wait_output(proc, lambda out: re.search(r"worker 3 \([^)]*\) ready", out) is not None,
                    what="a replacement")
        load.finish()
    finally:
        load.kill()
    output = proc.output()
    assert "Event loop stopped before Future completed" in output  # the worker's error, named
    # Only the requests in flight inside the dead worker may fail.
    errors = load.errors()
    assert len(errors) <= load.concurrency, errors
    assert all(abs(e["end"] - crashed) < 1.0 for e in errors), errors
    assert load.pids(after=crashed + 1.0), "nothing answered after the crash"
    proc.signal(signal.SIGTERM)
    assert proc.wait(20) == 0


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_max_requests_recycling_under_load_drops_nothing(pounce_process: Any, mode: str) -> None:
    proc = start(pounce_process, "--workers", "2", "--worker-mode", mode,
                 "--limit-max-requests", "60", "--limit-max-requests-jitter", "10")
    wait_ready(proc, 2)
    load = Load(proc.url, seconds=5.0, concurrency=4, path="/?sleep=0.01")
    try:
        results = load.finish()
    finally:
        load.kill()
    assert len(results) > 150, len(results)
    assert load.errors() == []
    output = proc.output()
    assert "(max_requests): replacing it" in output
    assert "exited (max_requests, exit code 0)" in output
    assert len(load.pids()) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_sigttin_and_sigttou_change_the_worker_count(pounce_process: Any, mode: str) -> None:
    proc = start(pounce_process, "--workers", "2", "--worker-mode", mode)
    wait_ready(proc, 2)
    proc.signal(signal.SIGTTIN)
    wait_ready(proc, 3)
    assert "workers: 3 (one more)" in proc.output()
    proc.signal(signal.SIGTTOU)
    wait_output(proc, lambda out: "draining (scale-down)" in out and "exited (scale-down" in out,
                what="a worker to be removed")
    assert "workers: 2 (one fewer)" in proc.output()
    proc.signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert proc.output().count("exited (shutdown, exit code 0)") == 2


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_workers_crashing_at_start_stop_the_server_with_exit_1(tmp_path: Path, mode: str) -> None:
    proc = ServerProcess(
        ["supervisorapps:crash_in_workers", "--factory", "--port", "0", "--workers", "2",
         "--worker-mode", mode],
        cwd=tmp_path, wait_for_banner=False,
        env={**os.environ, "PYTHONPATH": PYTHONPATH},
    )
    try:
        proc.start()
        assert proc.wait(60) == 1
        output = proc.output()
    finally:
        proc.__exit__(None, None, None)
    final = [line for line in output.splitlines() if line.startswith("pounce: error:")]
    assert len(final) == 1 and "giving up" in final[0] and "max_restarts = 5" in final[0]
    assert "cannot connect to the database" in final[0]  # the worker's own error, named
    assert 5 <= output.count("failed to start") <= 6  # bounded: no restart storm
    assert "starting a replacement in" in output  # with backoff


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_heartbeat_timeout_replaces_a_stuck_worker(pounce_process: Any, mode: str) -> None:
    proc = start(pounce_process, "--workers", "2", "--worker-mode", mode, "--worker-timeout", "1")
    wait_ready(proc, 2)
    import threading

    from supervisorapps import _one

    host, port = proc.url.split("//")[1].rsplit(":", 1)
    stuck = threading.Thread(target=_one, args=(host, int(port), "/block?30"), daemon=True)
    stuck.start()
    wait_output(proc, lambda out: "did not answer its heartbeat" in out, what="a heartbeat timeout")
    wait_ready(proc, 3)
    ok, body = _one(host, int(port), "/")
    assert ok, body
    if mode == "process":
        assert "timed out (killed by SIGKILL)" in proc.output()
    else:  # an interpreter cannot be killed: it is abandoned, and the server still exits
        assert "abandoning it (interpreters cannot be killed)" in proc.output()
    proc.signal(signal.SIGTERM)
    assert proc.wait(20) == 0


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_lifespan_failure_in_workers_exits_3(tmp_path: Path, mode: str) -> None:
    result = run_pounce(["testapps:failing_startup", "--port", "0", "--workers", "2",
                         "--worker-mode", mode, "--lifespan", "on"],
                        cwd=tmp_path, env={**os.environ, "PYTHONPATH": PYTHONPATH}, timeout=60)
    assert result.returncode == 3, result.stderr
    final = [line for line in result.stderr.splitlines() if line.startswith("pounce: error:")]
    assert len(final) == 1 and "lifespan startup failed: database unreachable" in final[0]


@pytest.mark.slow
@pytest.mark.parametrize("event", ["hup", "term"])
def test_thread_mode_signals_under_load(pounce_process: Any, event: str) -> None:
    proc = start(pounce_process, "--workers", "2", "--worker-mode", "thread")
    wait_output(proc, lambda out: "serving with 2 thread workers" in out, what="threads ready")
    load = Load(proc.url, seconds=3.0, concurrency=4, path="/?sleep=0.05")
    try:
        wait_output(proc, lambda out: answered(proc) >= 20, what="the load to get going")
        signalled = time.time()
        if event == "hup":
            proc.signal(signal.SIGHUP)
            wait_output(proc, lambda out: out.count("exited (restart") == 2, what="old threads to exit")
            results = load.finish()
            assert load.errors() == []
            assert len(results) > 30
            assert load.pids(after=signalled) == {str(proc.proc.pid)}  # type: ignore[union-attr]
        else:
            proc.signal(signal.SIGTERM)
            assert proc.wait(20) == 0
            results = load.finish()
            accepted = [r for r in results if r["start"] < signalled - 0.1]
            assert accepted and [r for r in accepted if not r["ok"]] == []
    finally:
        load.kill()


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_second_sigterm_forces_exit(pounce_process: Any, mode: str) -> None:
    proc = start(pounce_process, "--workers", "2", "--worker-mode", mode)
    wait_ready(proc, 2)
    import threading

    from supervisorapps import _one

    host, port = proc.url.split("//")[1].rsplit(":", 1)
    threading.Thread(target=_one, args=(host, int(port), "/hold?30"), daemon=True).start()
    wait_output(proc, lambda out: "holding a request" in out, what="the slow request to be in a worker")
    proc.signal(signal.SIGTERM)
    wait_output(proc, lambda out: "draining (shutdown)" in out, what="the drain")
    assert proc.proc is not None
    holds(lambda: proc.proc.poll() is None, 0.3, "the drain waiting for the slow request")
    forced = time.monotonic()
    proc.signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert time.monotonic() - forced < 5
    assert "forcing exit" in proc.output()


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_unix_socket_survives_worker_restarts(pounce_process: Any, tmp_path: Path, mode: str) -> None:
    path = tmp_path / "app.sock"
    proc = pounce_process("supervisorapps:app", "--uds", str(path), "--workers", "2",
                          "--worker-mode", mode, env={"PYTHONPATH": PYTHONPATH})
    wait_ready(proc, 2)
    proc.signal(signal.SIGHUP)
    wait_output(proc, lambda out: out.count("exited (restart") == 2, what="old workers to exit")
    # Workers closed their descriptors but left the file to the supervisor.
    import socket as socketlib

    assert path.exists()
    with socketlib.socket(socketlib.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
    proc.signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert not path.exists()  # the supervisor, owner of the file, removed it


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp")
@pytest.mark.parametrize("mode", [*MODES, "thread"])
def test_reuse_port_gives_each_worker_its_own_listener(pounce_process: Any, mode: str) -> None:
    shared = start(pounce_process, "--workers", "2", "--worker-mode", mode)
    wait_output(shared, lambda out: f"serving with 2 {mode} workers" in out, what="workers")
    assert listeners(shared.port) == 1
    proc = start(pounce_process, "--workers", "2", "--worker-mode", mode, "--reuse-port")
    wait_output(proc, lambda out: f"serving with 2 {mode} workers" in out, what="workers")
    port = proc.port
    assert listeners(port) == 2  # the supervisor only holds the port
    load = Load(proc.url, seconds=1.5, concurrency=4, path="/")
    try:
        load.finish()
    finally:
        load.kill()
    assert load.results and load.errors() == []
    proc.signal(signal.SIGHUP)
    wait_output(proc, lambda out: out.count("exited (restart") == 2, what="old workers to exit")
    assert listeners(port) == 2
    proc.signal(signal.SIGTERM)
    assert proc.wait(20) == 0


@pytest.mark.slow
def test_group_signals_reach_only_the_supervisor(pounce_process: Any) -> None:
    """A terminal sends TTIN/HUP to the whole process group: workers ignore
    them (TTIN would otherwise stop a process), the supervisor acts once."""
    proc = start(pounce_process, "--workers", "2", "--worker-mode", "process")
    wait_ready(proc, 2)
    assert proc.proc is not None
    os.killpg(proc.proc.pid, signal.SIGTTIN)
    wait_ready(proc, 3)
    os.killpg(proc.proc.pid, signal.SIGHUP)
    # A worker that took TTIN would be stopped and never finish this restart.
    wait_output(proc, lambda out: out.count("exited (restart") == 3, what="a rolling restart")
    output = proc.output()
    assert "died" not in output and output.count("workers: 3 (one more)") == 1


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_rolling_restart_into_broken_code_keeps_the_old_workers(tmp_path: Path, mode: str) -> None:
    env = {**os.environ, "PYTHONPATH": PYTHONPATH, "SUPERVISOR_TEST_MARKER": str(tmp_path / "calls"),
           "SUPERVISOR_TEST_LIMIT": "2", "POUNCE_SUPERVISOR_MAX_RESTARTS": "3",
           "POUNCE_SUPERVISOR_BACKOFF": "0.05"}
    proc = ServerProcess(["supervisorapps:crash_after", "--factory", "--port", "0", "--workers", "2",
                          "--worker-mode", mode], cwd=tmp_path, env=env)
    try:
        proc.start()
        wait_ready(proc, 2)
        old = set(ready_workers(proc).values())
        proc.signal(signal.SIGHUP)
        wait_output(proc, lambda out: "rolling restart abandoned" in out, what="the restart to be abandoned")
        load = Load(proc.url, seconds=1.0, concurrency=2, path="/")
        try:
            load.finish()
        finally:
            load.kill()
        assert load.results and load.errors() == []
        assert load.pids() <= old
        assert "new code cannot start" in proc.output()
        proc.signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        proc.__exit__(None, None, None)
