"""A rolling restart (SIGHUP, two process workers) under HTTP/2 load loses
no request: old workers send GOAWAY between streams and finish what they
took, clients move to new connections, which the new workers accept."""

from __future__ import annotations

import re
import signal
import threading
import time
from typing import Any

import httpx
import pytest

from pounce.testing import wait_for
from tests.helpers import APPS

READY = re.compile(r"worker (\d+) \(pid (\d+)\) ready")


def wait_output(proc: Any, predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate(proc.output()):
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out:\n{proc.output()}")


@pytest.mark.slow
def test_rolling_restart_under_http2_load_loses_nothing(pounce_process: Any) -> None:
    proc = pounce_process("supervisorapps:app", "--port", "0", "--workers", "2",
                          "--worker-mode", "process", "--no-access-log", env={"PYTHONPATH": str(APPS)})
    wait_output(proc, lambda out: len(READY.findall(out)) >= 2)
    old = {p for _, p in READY.findall(proc.output())}
    results: list[tuple[float, bool, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(http1=False, http2=True, timeout=20) as http:
            while not stop.is_set():
                started = time.time()
                try:
                    response = http.get(proc.url + "/?sleep=0.01")
                    outcome = (started, response.status_code == 200 and response.http_version == "HTTP/2",
                               response.text.split()[0])
                except httpx.HTTPError as exc:
                    outcome = (started, False, repr(exc))
                with lock:
                    results.append(outcome)

    threads = [threading.Thread(target=client) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(results) >= 30, 15, what="the HTTP/2 load to get going")
        proc.signal(signal.SIGHUP)
        wait_output(proc, lambda out: out.count("exited (restart") == 2)
        restarted = time.time()
        # Requests that start once both old workers are gone go to the new
        # ones (bounded: a few seconds at most).
        deadline = restarted + 10
        while time.time() < deadline:
            with lock:
                if sum(1 for started, ok, _ in results if ok and started > restarted) >= 20:
                    break
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    failures = [r for r in results if not r[1]]
    assert len(results) > 100
    assert failures == []
    new = {p for _, p in READY.findall(proc.output())} - old
    late = {pid for started, ok, pid in results if ok and started > restarted}
    assert len(new) == 2 and late and late <= new
