"""A real browser over HTTP/3: headless Chromium, forced onto QUIC for the
server's origin and trusting its test certificate by public-key hash,
loads the demo page; the page itself reports the protocol it was fetched
with (``performance.getEntries()[0].nextHopProtocol``), and the server's
request observer saw the same request as HTTP/3."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from pounce import hookimpl
from pounce.demo import app as demo_app
from pounce.testing import ServerThread
from tests.conftest import need_command
from tests.h3client import H3Certs, udp_port

pytest.importorskip("aioquic")


def spki_hash(cert_pem: str) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)): what Chromium's
    ``--ignore-certificate-errors-spki-list`` takes."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    cert = x509.load_pem_x509_certificate(Path(cert_pem).read_bytes())
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


class Versions:
    """Records each request's path and HTTP version (a request observer)."""

    name = "versions"

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    @hookimpl
    def pounce_request_observer(self, config: Any) -> Any:
        return lambda scope, status, sent, duration: self.seen.append((scope["path"], scope["http_version"]))


def start_chromium(profile: Path, *flags: str) -> tuple[subprocess.Popen[bytes], int]:
    binary = need_command("chromium")
    proc = subprocess.Popen(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", "--no-default-browser-check", "--disable-dev-shm-usage",
         f"--user-data-dir={profile}", "--remote-debugging-port=0", "--remote-allow-origins=*",
         *flags, "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_chromium(proc)
            pytest.fail(f"chromium did not start (exit {proc.poll()})")
        time.sleep(0.1)
    return proc, int(port_file.read_text().split()[0])


def stop_chromium(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


@pytest.fixture
def certs(tmp_path: Path) -> H3Certs:
    return H3Certs(tmp_path)


@pytest.fixture
def server(certs: H3Certs) -> Iterator[tuple[ServerThread, Versions]]:
    versions = Versions()
    with ServerThread(demo_app, plugins=[versions], **certs.overrides()) as srv:
        yield srv, versions


def test_chromium_loads_the_demo_over_http3(server: tuple[ServerThread, Versions], certs: H3Certs,
                                            tmp_path: Path) -> None:
    srv, versions = server
    port = udp_port(srv)
    origin = f"127.0.0.1:{port}"
    profile = tmp_path / "profile"
    profile.mkdir()
    proc, devtools = start_chromium(profile, "--enable-quic", f"--origin-to-force-quic-on={origin}",
                                    f"--ignore-certificate-errors-spki-list={spki_hash(certs.cert)}")
    try:
        with httpx.Client(trust_env=False, timeout=10) as http:
            page = next(t for t in http.get(f"http://127.0.0.1:{devtools}/json/list").json()
                        if t.get("type") == "page")

        async def drive() -> tuple[str, str]:
            async with connect(page["webSocketDebuggerUrl"], proxy=None, max_size=None) as ws:
                next_id = 0

                async def call(method: str, **params: Any) -> dict[str, Any]:
                    nonlocal next_id
                    next_id += 1
                    await ws.send(json.dumps({"id": next_id, "method": method, "params": params}))
                    while True:
                        reply = json.loads(await ws.recv())
                        if reply.get("id") == next_id:
                            assert "error" not in reply, reply
                            return reply["result"]

                await call("Page.enable")
                await call("Page.navigate", url=f"https://{origin}/")
                deadline = time.monotonic() + 20
                while True:
                    result = await call("Runtime.evaluate", returnByValue=True, expression=(
                        "document.readyState === 'complete' && performance.getEntries().length ? "
                        "performance.getEntries()[0].nextHopProtocol + '|' + document.title : ''"))
                    value = result["result"].get("value")
                    if value:
                        protocol, _, title = value.partition("|")
                        return protocol, title
                    assert time.monotonic() < deadline, "the page never loaded"
                    await asyncio.sleep(0.1)

        protocol, title = asyncio.run(asyncio.wait_for(drive(), 60))
    finally:
        stop_chromium(proc)
    assert protocol == "h3"
    assert title  # the demo page itself, not an error page
    assert ("/", "3") in versions.seen
