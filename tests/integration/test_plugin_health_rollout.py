"""Zero dropped requests through SIGTERM and SIGHUP, with readiness polled.

A small load balancer is simulated in threads: a prober polls ``/readyz``
every 50 ms, and load threads send requests while the instance is "in
rotation". Each request and probe uses a connection of its own (as a load
balancer's health checker does, and so that the test measures the
server's accept path rather than the keep-alive close race every HTTP/1.1
client has to retry around).

- SIGTERM (one worker, and two process workers): readiness must turn 503
  while the listener still accepts; the balancer takes the instance out of
  rotation on the first non-200 probe; every request sent before that, and
  one sent right after it, and a slow one in flight, must get a 200. The
  server must then exit 0.
- SIGHUP (rolling restart, two process workers): the load never stops;
  every request must get a 200 while every worker process is replaced.
"""

from __future__ import annotations

import signal
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

LOAD_THREADS = 4


def write_config(tmp_path: Path, workers: int, delay: float) -> None:
    (tmp_path / "pounce.toml").write_text(textwrap.dedent(f"""
        [server]
        app = "opsapps:app"
        port = 0
        workers = {workers}
        worker_mode = "process"
        timeout_graceful_shutdown = 20.0

        [health]
        path = "/healthz"
        ready_path = "/readyz"
        shutdown_delay = {delay}
    """))


class Balancer:
    """Readiness polling plus load, both on fresh connections."""

    def __init__(self, url: str, *, follow_readiness: bool) -> None:
        self.url = url
        self.follow_readiness = follow_readiness
        self.out_of_rotation = threading.Event()
        self.stop = threading.Event()
        self.probes: list[tuple[float, int | str]] = []
        self.results: list[tuple[int | str, int | None]] = []  # (status or error, pid)
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._probe, daemon=True)]
        self.threads += [threading.Thread(target=self._load, daemon=True) for _ in range(LOAD_THREADS)]

    def __enter__(self) -> Balancer:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(15)

    def _probe(self) -> None:
        while not self.stop.is_set():
            try:
                with httpx.Client(timeout=5) as client:
                    status: int | str = client.get(self.url + "/readyz", headers={"connection": "close"}).status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            self.probes.append((time.monotonic(), status))
            if status != 200 and self.follow_readiness:
                self.out_of_rotation.set()
                return
            self.stop.wait(0.05)

    def _load(self) -> None:
        while not self.stop.is_set() and not self.out_of_rotation.is_set():
            try:
                with httpx.Client(timeout=10) as client:
                    response = client.get(self.url + "/", headers={"connection": "close"})
                outcome: tuple[int | str, int | None] = (response.status_code, response.json()["pid"])
            except httpx.HTTPError as exc:
                outcome = (f"{type(exc).__name__}: {exc}", None)
            with self.lock:
                self.results.append(outcome)

    def served(self) -> int:
        with self.lock:
            return len(self.results)

    def failures(self) -> list[Any]:
        with self.lock:
            return [r for r in self.results if r[0] != 200]

    def pids(self, since: int = 0) -> set[int]:
        with self.lock:
            return {pid for _, pid in self.results[since:] if pid is not None}


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2], ids=["single", "processes"])
def test_sigterm_drops_nothing(pounce_process: Any, tmp_path: Path, workers: int) -> None:
    write_config(tmp_path, workers, delay=2.0)
    proc = pounce_process("--config", "pounce.toml")
    url = proc.url
    with Balancer(url, follow_readiness=True) as balancer:
        wait_for(lambda: balancer.served() >= 40, 30, "load to flow")
        slow: dict[str, Any] = {}
        mark = tmp_path / "slow-started"

        def slow_request() -> None:
            try:
                with httpx.Client(timeout=20) as client:
                    slow["status"] = client.get(url + "/slow", params={"s": "1.5", "mark": str(mark)}).status_code
            except httpx.HTTPError as exc:
                slow["status"] = repr(exc)

        slow_thread = threading.Thread(target=slow_request)
        slow_thread.start()
        wait_for(mark.exists, 10, "the slow request to reach a worker")
        proc.signal(signal.SIGTERM)
        sent_at = time.monotonic()
        assert balancer.out_of_rotation.wait(10), "readiness never left 200"
        # The balancer still has requests in flight when it notices: they must land.
        with httpx.Client(timeout=10) as client:
            late = client.get(url + "/", headers={"connection": "close"})
        noticed_after = time.monotonic() - sent_at
        slow_thread.join(20)
    assert late.status_code == 200
    assert noticed_after < 2.0, f"took {noticed_after:.2f}s to notice: too slow to prove the delay"
    first_bad = next(status for _, status in balancer.probes if status != 200)
    assert first_bad == 503, f"readiness failed with {first_bad} instead of turning 503"
    assert balancer.failures() == [], balancer.failures()[:5]
    assert slow.get("status") == 200, slow
    assert proc.wait(30) == 0, proc.output()


@pytest.mark.slow
def test_sighup_rolling_restart_drops_nothing(pounce_process: Any, tmp_path: Path) -> None:
    write_config(tmp_path, 2, delay=1.0)
    proc = pounce_process("--config", "pounce.toml")
    with Balancer(proc.url, follow_readiness=False) as balancer:
        wait_for(lambda: len(balancer.pids()) == 2 and balancer.served() >= 40, 30, "both workers serving")
        old = balancer.pids()
        proc.signal(signal.SIGHUP)
        wait_for(lambda: proc.output().count("exited (restart") == 2, 60, "both old workers to exit")
        mark = balancer.served()
        wait_for(lambda: balancer.served() >= mark + 40, 30, "load after the restart")
        new = balancer.pids(since=mark)
    assert new and not (new & old), (old, new)
    assert balancer.failures() == [], balancer.failures()[:5]
    assert all(status in (200, 503) for _, status in balancer.probes), balancer.probes
    assert proc.stop() == 0, proc.output()
