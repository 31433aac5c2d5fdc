"""The bundled demo app, served from the root pounce.toml as the README says."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from pounce.testing import wait_for
from tests.helpers import ROOT, need_command


@pytest.mark.slow
def test_demo_endpoints(pounce_process) -> None:
    proc = pounce_process("--config", str(ROOT / "pounce.toml"), "--port", "0")
    base = proc.url
    page = httpx.get(base + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for link in ("/healthz", "/stream", "/events", "/echo", "/ws"):
        assert link in page.text
    assert httpx.get(base + "/healthz").json()["status"] == "ok"
    with httpx.stream("GET", base + "/events", timeout=5) as r:
        assert r.headers["content-type"] == "text/event-stream"
        first = next(r.iter_lines())
    assert first == "id: 1"
    assert httpx.post(base + "/echo", content=b"ping", headers={"content-type": "text/plain"}).text == "ping"
    assert httpx.get(base + "/nope").status_code == 404


@pytest.mark.slow
def test_demo_page_in_a_real_browser(pounce_process, tmp_path: Path) -> None:
    chromium = need_command("chromium")
    proc = pounce_process("--config", str(ROOT / "pounce.toml"), "--port", "0")
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", proc.url + "/"],
        capture_output=True, text=True, timeout=60,
    )
    dom = result.stdout
    assert "pounce is running" in dom and 'href="/healthz"' in dom
    # The page's script ran and opened its EventSource: the access log shows
    # it once the stream ends, a moment after chromium has closed it.
    wait_for(lambda: '"GET /events HTTP/1.1" 200' in proc.output(), what=proc.output)
