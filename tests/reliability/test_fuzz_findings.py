"""Regression tests for what the atheris fuzzers found, replayed over real
sockets, and a short bounded run of each fuzzer to keep the harnesses working.

Every input libFuzzer saved as a crash lives in ``fuzz/crashes/`` (first
byte: the harness's read-size choice, stripped here). Each must now get an
HTTP error status or a clean close, with nothing logged as an error, from a
server that then answers the next request.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from pounce.testing import LogRecords
from tests.helpers import ROOT, connect, exchange, read_until

CRASHES = sorted((ROOT / "fuzz" / "crashes").glob("*"))
RUNS = 100


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass
        return
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.parametrize("path", CRASHES, ids=[p.name for p in CRASHES])
def test_fuzz_finding_replayed_over_a_socket(serve: Any, errors: LogRecords, path: Path) -> None:
    srv = serve(app, lifespan="off", logging_access_log=False, http_max_request_body_size=4096,
                http_max_incomplete_event_size=2048)
    data = exchange(srv.port, path.read_bytes()[1:], half_close=True)
    assert data == b"" or re.match(rb"HTTP/1\.1 [1-5]\d\d ", data), data[:100]
    assert errors.records == []
    assert httpx.get(srv.url).text == "ok"


def test_upgrade_with_non_ascii_header_gets_400(serve: Any, errors: LogRecords) -> None:
    """Finding F1: a non-ASCII byte in Connection (or the WebSocket
    subprotocol/extension headers) of an upgrade request escaped as a
    UnicodeDecodeError from data_received: a logged traceback, no answer."""
    srv = serve(app, lifespan="off", logging_access_log=False)
    base = (b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
    for extra in (b"Connection: Upgrade\xe0\r\n", b"Sec-WebSocket-Protocol: chat\xff\r\n",
                  b"Sec-WebSocket-Extensions: permessage-deflate\xc3\r\n"):
        data = exchange(srv.port, base + extra + b"\r\n", half_close=True)
        assert data.startswith(b"HTTP/1.1 400 "), (extra, data[:100])
    assert errors.records == []


@pytest.mark.slow
@pytest.mark.parametrize("harness", ["fuzz_http.py", "fuzz_ws.py", "fuzz_h2.py"])
def test_fuzzer_runs_clean_for_a_bounded_time(harness: str, tmp_path: Path) -> None:
    """A short run of each atheris harness (the long runs are in
    docs/reliability.md): it must run and find nothing new.

    The run is bounded by a count of inputs, with time only as a backstop:
    the HTTP/2 harness manages a few dozen inputs a second on a slow or
    busy host, so a time bound with a run-count floor failed there."""
    pytest.importorskip("atheris")
    result = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / harness), f"-runs={RUNS}", "-max_total_time=60", "-seed=1",
         f"-artifact_prefix={tmp_path}/", str(tmp_path / "corpus")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    done = re.search(r"Done (\d+) runs", result.stderr)
    assert done and int(done.group(1)) >= RUNS, result.stderr[-2000:]
    assert not list(tmp_path.glob("crash-*"))


@pytest.mark.parametrize("header", [
    b"X-Forwarded-For: 1.2.3.4:\xb2",
    b"X-Forwarded-For: [::1]:\xb9",
    b"Forwarded: for=\"[::1]:\xb3\"",
    b"Forwarded: for=1.2.3.4:\xb2\xb2",
])
def test_proxy_port_with_a_latin1_digit_is_not_a_crash(serve: Any, errors: LogRecords, header: bytes) -> None:
    """Finding F4: "²" (0xB2 read as latin-1) passes str.isdigit() but not
    int(), so a trusted proxy's header with such a "port" raised out of
    data_received. Now the port is 0, as for any unparsable port."""
    srv = serve(app, lifespan="off", logging_access_log=False)
    data = exchange(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + header + b"\r\nConnection: close\r\n\r\n",
                    half_close=True)
    assert data.startswith(b"HTTP/1.1 200 "), data[:100]
    assert errors.records == []


def test_upgrade_with_non_ascii_cookie_is_accepted(serve: Any, errors: LogRecords) -> None:
    """The F1 fix must stay narrow: obs-text is legal in field values (a
    cookie may carry UTF-8), so only the headers wsproto splits as ASCII are
    refused for it."""
    srv = serve(app, lifespan="off", logging_access_log=False)
    request = (b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               b"Cookie: name=caf\xc3\xa9\r\nUser-Agent: t\xe9st\r\n\r\n")
    with connect(srv.port) as sock:
        sock.sendall(request)
        assert read_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 101 ")
    assert errors.records == []
