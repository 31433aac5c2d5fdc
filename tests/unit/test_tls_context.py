"""The tls plugin's context builder on its own (HTTPS on real sockets is
tests/integration/test_tls.py)."""

from __future__ import annotations

import ssl
from pathlib import Path

import trustme

from pounce import ServerConfig
from pounce.plugins.tls import build_context


def test_build_context_is_pure(tmp_path: Path) -> None:
    """Two calls give two independent contexts (what a process worker does)."""
    both = tmp_path / "both.pem"
    both.write_bytes(trustme.CA().issue_cert("localhost").private_key_and_cert_chain_pem.bytes())
    config = ServerConfig.load(None, env={}, discover=False, tls_certfile=str(both))
    first, second = build_context(config), build_context(config)
    assert isinstance(first, ssl.SSLContext) and isinstance(second, ssl.SSLContext)
    assert first is not second
    assert build_context(ServerConfig.load(None, env={}, discover=False)) is None
