"""Which peers pounce believes proxy headers from (``forwarded_allow_ips``),
decided by ``ProxyTrust`` alone; the headers on a real server are
tests/integration/test_http_proxy.py."""

from __future__ import annotations

from pounce.core.asgi.proxy import ProxyTrust


def test_trust_rules() -> None:
    trust = ProxyTrust(["127.0.0.1", "10.0.0.0/8", "fd00::/8", "unix"])
    assert trust.trusts("127.0.0.1") and trust.trusts("10.1.2.3") and trust.trusts("fd00::1")
    assert not trust.trusts("127.0.0.2") and not trust.trusts("11.0.0.1") and not trust.trusts("::1")
    assert trust.trusts(None)  # a unix-socket peer, "unix" listed
    assert not ProxyTrust(["127.0.0.1"]).trusts(None)
    assert not ProxyTrust(["127.0.0.1"]).trusts("not-an-ip")
    everyone = ProxyTrust(["*"])
    assert everyone.trusts("8.8.8.8") and everyone.trusts(None)

