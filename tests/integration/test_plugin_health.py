"""The ``health`` plugin against a real server: probes answered by the server
itself, readiness turning 503 when a worker's drain begins while the
listener still accepts (``shutdown_delay``), probes kept out of the info
access log, and its config errors."""

from __future__ import annotations

import json
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import opsapps
import pytest

from pounce.core.config import ServerConfig
from pounce.plugins import health, rate_limit, request_id
from pounce.testing import run_pounce
from tests.conftest import subprocess_env


def fresh_get(url: str, timeout: float = 5.0) -> httpx.Response:
    """One request on a connection of its own, as a load balancer's probe."""
    with httpx.Client(timeout=timeout) as client:
        return client.get(url, headers={"connection": "close"})


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_probes_are_answered_by_the_server(serve: Any) -> None:
    server = serve(opsapps.app, health_path="/healthz", health_ready_path="/readyz")
    before = opsapps.REACHED["requests"]
    with httpx.Client() as client:
        live = client.get(server.url + "/healthz")
        ready = client.get(server.url + "/readyz")
        head = client.head(server.url + "/healthz")
        post = client.post(server.url + "/readyz", content=b"x")
        other = client.get(server.url + "/healthz/more")
    assert (live.status_code, live.text) == (200, "ok\n")
    assert live.headers["cache-control"] == "no-store"
    assert (ready.status_code, ready.text) == (200, "ok\n")
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == "3"
    assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"
    # Only the exact path is a probe; anything else is the app's.
    assert other.status_code == 200 and other.json()["path"] == "/healthz/more"
    assert opsapps.REACHED["requests"] - before == 1


def test_probe_paths_follow_root_path(serve: Any) -> None:
    server = serve(opsapps.app, health_path="/healthz", root_path="/api")
    response = httpx.get(server.url + "/healthz")
    assert (response.status_code, response.text) == (200, "ok\n")


def test_unconfigured_plugins_install_no_wrapper() -> None:
    config = ServerConfig.load(env={}, discover=False)
    for plugin in (health, request_id, rate_limit):
        assert plugin.pounce_wrap_app(config=config, app=opsapps.app) is None, plugin.name
    # ...and a drain asks for no delay.
    worker = type("W", (), {"config": config})()
    assert health.pounce_worker_draining(worker=worker) is None


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2], ids=["single", "threads"])
def test_readiness_turns_503_at_drain_while_still_accepting(serve: Any, workers: int) -> None:
    """shutdown(): readiness is 503 at once, yet for shutdown_delay new
    connections are still served, and a request in flight completes."""
    server = serve(opsapps.app, health_ready_path="/readyz", health_shutdown_delay=2.0,
                   timeout_graceful_shutdown=10.0, workers=workers, worker_mode="thread")
    url = server.url
    assert fresh_get(url + "/readyz").status_code == 200
    slow: dict[str, Any] = {}

    def slow_request() -> None:
        try:
            slow["response"] = fresh_get(url + "/slow?s=1.0", timeout=15)
        except httpx.HTTPError as exc:
            slow["error"] = exc

    reached = opsapps.REACHED["requests"]
    thread = threading.Thread(target=slow_request)
    thread.start()
    wait_for(lambda: opsapps.REACHED["requests"] > reached, 10, "the slow request to reach the app")
    began = time.monotonic()
    server.server.shutdown()
    statuses: list[int] = []
    wait_for(lambda: statuses.append(fresh_get(url + "/readyz").status_code) or statuses[-1] == 503,
             5, "readiness to turn 503")
    # Still accepting: a request on a new connection right after the 503.
    after = fresh_get(url + "/")
    assert after.status_code == 200, after.text
    assert time.monotonic() - began < 2.0, "the check ran too late to prove anything"
    thread.join(15)
    assert "error" not in slow, slow
    assert slow["response"].status_code == 200
    assert set(statuses) <= {200, 503}


@pytest.mark.slow
def test_probes_are_logged_at_debug_unless_asked(pounce_process: Any) -> None:
    def run(*extra: str) -> list[dict[str, Any]]:
        proc = pounce_process("opsapps:app", "--port", "0", "--log-format", "json",
                              "--health-path", "/healthz", *extra)
        fresh_get(proc.url + "/healthz")
        fresh_get(proc.url + "/")
        assert proc.stop() == 0
        records = [json.loads(line) for line in proc.output().splitlines() if line.startswith("{")]
        return [r for r in records if r["logger"] == "pounce.access"]

    info = run()
    assert [r["path"] for r in info] == ["/"]
    debug = run("--log-level", "debug")
    assert [(r["path"], r["level"]) for r in debug] == [("/healthz", "debug"), ("/", "info")]


def test_access_log_option_logs_probes_at_info(pounce_process: Any, tmp_path: Path) -> None:
    (tmp_path / "pounce.toml").write_text(textwrap.dedent("""
        [server]
        app = "opsapps:app"
        port = 0
        [health]
        path = "/healthz"
        access_log = true
        [logging]
        format = "json"
    """))
    proc = pounce_process("--config", "pounce.toml")
    fresh_get(proc.url + "/healthz")
    assert proc.stop() == 0
    records = [json.loads(line) for line in proc.output().splitlines() if line.startswith("{")]
    access = [r for r in records if r["logger"] == "pounce.access"]
    assert [(r["path"], r["level"]) for r in access] == [("/healthz", "info")]


@pytest.mark.parametrize(("toml", "flags", "message"), [
    ("", ["--health-path", "healthz"], '--health-path: expected a path starting with "/"'),
    ('[health]\npath = "/h"\nready_path = "/h"\n', [],
     "pounce.toml: [health] ready_path: expected a path other than [health] path ('/h'), found '/h'"),
    ("", ["--health-shutdown-delay", "40", "--timeout-graceful-shutdown", "30"],
     "--health-shutdown-delay: expected at most [server] timeout_graceful_shutdown (30)"),
    ('[health]\nshutdown_delay = -1\n', [], "[health] shutdown_delay: expected a number >= 0, found -1"),
])
def test_bad_config_is_one_line_and_exit_2(tmp_path: Path, toml: str, flags: list[str], message: str) -> None:
    (tmp_path / "pounce.toml").write_text('[server]\napp = "pounce.demo:app"\n' + toml)
    result = run_pounce(["--config", "pounce.toml", "--check", *flags], cwd=tmp_path, env=subprocess_env())
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_check_lists_the_operations_plugins(tmp_path: Path) -> None:
    result = run_pounce(["pounce.demo:app", "--check", "--health-ready-path", "/readyz", "--request-id",
                         "--rate-limit", "5", "--workers", "2"], cwd=tmp_path, env=subprocess_env())
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for name, hook in (("health", "pounce_worker_draining"), ("request_id", "pounce_wrap_app"),
                       ("rate_limit", "pounce_wrap_app")):
        line = next((ln for ln in out.splitlines() if ln.startswith(f"#   {name} ")), None)
        assert line is not None and hook in line, out
    assert 'ready_path = "/readyz"    # from cli' in out
    assert "# warning: [rate_limit] is per worker: with 2 workers" in out
