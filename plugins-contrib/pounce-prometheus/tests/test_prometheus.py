"""pounce-prometheus used exactly as a user would: installed, enabled in
pounce.toml, the ``pounce`` command running, ``/metrics`` scraped with a real
HTTP client while load runs."""

from __future__ import annotations

import os
import re
import signal
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from pounce.testing import ServerProcess, run_pounce

APP = '''
import asyncio

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/slow":
        await asyncio.sleep(1.0)
    status = 404 if scope["path"] == "/missing" else 200
    body = b"hello" if status == 200 else b"nope"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
'''


def start(tmp_path: Path, extra: str = "", workers: int = 1) -> ServerProcess:
    (tmp_path / "metricsapp.py").write_text(APP)
    (tmp_path / "pounce.toml").write_text(textwrap.dedent(f"""
        [server]
        app = "metricsapp:app"
        port = 0
        workers = {workers}

        [plugins]
        enable = ["prometheus"]

        [prometheus]
        path = "/internal/metrics"
    """) + extra)
    # Not started here: ``with`` starts it and always stops it.
    return ServerProcess(["--config", "pounce.toml", "--app-dir", str(tmp_path)], cwd=tmp_path)


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in the exposition text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    total = 0.0
    found = False
    for line in text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        have = ",".join(sorted(p for p in (match.group(2) or "").split(",") if p and not p.startswith("pid=")))
        if have == want:
            total += float(match.group(3))
            found = True
    return total if found else 0.0


def run_load(url: str, requests: int, threads: int) -> None:
    def hammer() -> None:
        with httpx.Client(timeout=10) as client:
            for _ in range(requests):
                assert client.get(url + "/").status_code == 200

    pool = [threading.Thread(target=hammer) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)


def scrape_while_loaded(url: str, requests: int, threads: int) -> list[str]:
    """Scrape repeatedly while the load and a slow request run."""
    scrapes: list[str] = []
    load = threading.Thread(target=run_load, args=(url, requests, threads))
    slow = threading.Thread(target=lambda: httpx.get(url + "/slow", timeout=10))
    load.start()
    slow.start()
    with httpx.Client(timeout=10) as scraper:
        while load.is_alive() or slow.is_alive():
            response = scraper.get(url + "/internal/metrics")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            scrapes.append(response.text)
            time.sleep(0.05)
    load.join(60)
    slow.join(60)
    return scrapes


@pytest.mark.slow
def test_metrics_single_worker(tmp_path: Path) -> None:
    with start(tmp_path) as proc:
        url = proc.url
        assert url is not None
        assert "prometheus metrics at /internal/metrics (single process)" in proc.output()
        scrapes = scrape_while_loaded(url, requests=50, threads=4)
        assert httpx.get(url + "/missing").status_code == 404
        assert httpx.post(url + "/", content=b"x").status_code == 200
        final = httpx.get(url + "/internal/metrics").text

    assert any(sample(s, "pounce_requests_in_flight") >= 1 for s in scrapes), "slow request never seen in flight"
    assert sample(final, "pounce_requests_in_flight") == 0
    assert sample(final, "pounce_requests_total", method="GET", status="200") == 201  # 200 + /slow
    assert sample(final, "pounce_requests_total", method="GET", status="404") == 1
    assert sample(final, "pounce_requests_total", method="POST", status="200") == 1
    assert sample(final, "pounce_request_duration_seconds_count", method="GET", status="200") == 201
    # the slow request is in the 1s+ buckets only
    assert sample(final, "pounce_request_duration_seconds_bucket", method="GET", status="200", le="0.5") == 200
    assert sample(final, "pounce_request_duration_seconds_sum", method="GET", status="200") >= 1.0
    assert sample(final, "pounce_response_body_bytes_total", method="GET", status="200") == 201 * 5
    assert sample(final, "pounce_worker_requests_total", worker="0") == 203
    assert sample(final, "pounce_worker_start_time_seconds", worker="0") > time.time() - 120
    assert sample(final, "pounce_worker_pid", worker="0") > 0
    # scrapes are not counted as requests
    assert "/internal/metrics" not in final


def test_path_is_configurable_and_default_path_is_the_app(tmp_path: Path) -> None:
    with start(tmp_path) as proc:
        assert httpx.get(f"{proc.url}/metrics").text == "hello"
        assert "pounce_requests_total" in httpx.get(f"{proc.url}/internal/metrics").text


def test_configured_multiprocess_dir_is_emptied_at_start_and_kept(tmp_path: Path) -> None:
    directory = tmp_path / "metrics-db"
    directory.mkdir()
    (directory / "counter_999999.db").write_bytes(b"stale data of a previous run")
    extra = f'multiprocess_dir = "{directory}"\n'
    with start(tmp_path, extra=extra) as proc:
        assert f"multiprocess in {directory}" in proc.output()
        for _ in range(3):
            assert httpx.get(f"{proc.url}/", timeout=10).status_code == 200
        text = httpx.get(f"{proc.url}/internal/metrics", timeout=10).text
        assert sample(text, "pounce_requests_total", method="GET", status="200") == 3
        assert not (directory / "counter_999999.db").exists()
        assert list(directory.glob("counter_*.db"))
    assert directory.is_dir(), "a configured directory belongs to the user and stays"


def test_list_plugins_and_bad_path(tmp_path: Path) -> None:
    listing = run_pounce(["--list-plugins"], cwd=tmp_path)
    line = next(ln for ln in listing.stdout.splitlines() if ln.startswith("prometheus "))
    assert "pounce-prometheus" in line and "0.1.0" in line
    for hook in ("pounce_add_options", "pounce_request_observer", "pounce_worker_exit", "pounce_wrap_app"):
        assert hook in line
    bad = run_pounce(["pounce.demo:app", "--port", "0", "--plugin", "prometheus",
                      "--prometheus-path", "metrics"], cwd=tmp_path)
    assert bad.returncode == 2
    assert "[prometheus] path" in bad.stderr


def supervisor_works() -> bool:
    try:
        from pounce.plugins.supervisor import arbiter  # noqa: F401
    except ImportError:
        return False
    return True


def worker_pids(text: str) -> dict[str, int]:
    """worker label -> pid, from the live pounce_worker_pid gauge."""
    return {m.group(1): int(float(m.group(2)))
            for m in re.finditer(r'^pounce_worker_pid\{worker="(\w+)"\} (\S+)$', text, re.M)}


@pytest.mark.slow
@pytest.mark.skipif(not supervisor_works(), reason="pounce's supervisor plugin is not available")
def test_metrics_totals_over_two_worker_processes(tmp_path: Path) -> None:
    requests, threads = 60, 4
    with start(tmp_path, workers=2) as proc:
        url = proc.url
        assert url is not None
        output = proc.output()
        directory = Path(output.split("multiprocess in ", 1)[1].split(")", 1)[0])
        assert directory.is_dir()

        def one_shot() -> None:  # a new connection per request spreads over workers
            for _ in range(requests):
                assert httpx.get(url + "/", timeout=10).status_code == 200

        pool = [threading.Thread(target=one_shot) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(60)
        # Every scrape, whichever worker answers it, sees the same totals.
        for _ in range(6):
            text = httpx.get(url + "/internal/metrics", timeout=10).text
            assert sample(text, "pounce_requests_total", method="GET", status="200") == requests * threads
            pids = worker_pids(text)
            assert len(pids) == 2 and len(set(pids.values())) == 2, pids
        per_worker = [sample(text, "pounce_worker_requests_total", worker=w) for w in pids]
        assert sum(per_worker) == requests * threads

        # A worker dies: the supervisor replaces it, pounce_worker_exit drops
        # the dead process's live gauges, its counters stay in the totals.
        victim_label, victim_pid = sorted(pids.items())[0]
        os.kill(victim_pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            text = httpx.get(url + "/internal/metrics", timeout=10).text
            now = worker_pids(text)
            if len(now) == 2 and victim_pid not in now.values():
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"dead worker's gauges still exported: {worker_pids(text)}")
        assert now.get(victim_label) != victim_pid
        assert sample(text, "pounce_requests_total", method="GET", status="200") == requests * threads
        assert (directory / f"counter_{victim_pid}.db").exists()  # counted requests stay counted
        assert not list(directory.glob(f"gauge_live*_{victim_pid}.db"))
    assert not directory.exists(), "the temporary multiprocess directory is removed at exit"
