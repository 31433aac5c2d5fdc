"""A real browser over HTTP/3: headless Chromium, forced onto QUIC for the
server's origin and trusting its test certificate by public-key hash,
loads the demo page; the page itself reports the protocol it was fetched
with (``performance.getEntries()[0].nextHopProtocol``), and the server's
request observer saw the same request as HTTP/3."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from pounce import hookimpl
from pounce.demo import app as demo_app
from pounce.testing import ServerThread
from tests.browser import DevTools, launch_chromium
from tests.h3client import H3Certs, udp_port

pytest.importorskip("aioquic")
pytestmark = pytest.mark.slow


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
    flags = ["--enable-quic", f"--origin-to-force-quic-on={origin}",
             f"--ignore-certificate-errors-spki-list={spki_hash(certs.cert)}"]
    with launch_chromium(tmp_path / "profile", flags) as devtools:
        with httpx.Client(trust_env=False, timeout=10) as http:
            page = next(t for t in http.get(f"http://127.0.0.1:{devtools}/json/list").json()
                        if t.get("type") == "page")

        async def drive() -> str:
            async with connect(page["webSocketDebuggerUrl"], proxy=None, max_size=None) as ws:
                tools = DevTools(ws)
                await tools.call("Page.enable")
                await tools.call("Page.navigate", url=f"https://{origin}/")
                return await tools.wait_for(
                    "document.readyState === 'complete' && performance.getEntries().length ? "
                    "performance.getEntries()[0].nextHopProtocol + '|' + document.title : ''", timeout=30)

        protocol, _, title = asyncio.run(asyncio.wait_for(drive(), 60)).partition("|")
    assert protocol == "h3"
    assert title  # the demo page itself, not an error page
    assert ("/", "3") in versions.seen
