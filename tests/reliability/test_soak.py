"""The short soak: benchmarks/soak.py for about 25 seconds.

The long run (millions of requests, minutes) is in docs/reliability.md;
this one keeps the same checks in the suite: mixed traffic (pipelined GETs,
streamed responses, POST bodies fixed and chunked, WebSocket sessions,
clients vanishing mid-request and mid-response, with FIN or RST), every
response checked byte for byte, no error in the server log, a clean exit,
and the server's descriptors back to where they started once idle.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow  # the whole file takes seconds


def test_short_soak(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--duration", "22", "--clients", "1",
         "--concurrency", "8", "--rss-slack", "16", "--json", str(out)],
        capture_output=True, text=True, timeout=100, cwd=ROOT,
    )
    assert out.exists(), result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(out.read_text())
    counts = report["counts"]
    assert report["client_errors"] == 0, report["client_error_samples"]
    assert report["server_error_lines"] == 0, report["server_error_samples"]
    assert report["server_warning_lines"] == 0, report["server_warning_samples"]
    assert report["server_exit"] == 0
    assert report["fds"]["end_idle"] <= report["fds"]["start"], report["fds"]
    assert report["verdict"]["rss_flat"], report["rss_kib"]
    # Every kind of traffic really happened.
    for kind in ("hello", "stream", "post", "ws_sessions", "abort_request", "abort_response"):
        assert counts[kind] > 0, (kind, counts)
    assert report["requests"] > 10_000, report["requests"]
    assert result.returncode == 0 and report["ok"], result.stdout[-2000:]
