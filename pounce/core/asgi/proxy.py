"""Which peers may tell us the real client, and reading what they say.

Trust is decided once per connection (the peer address does not change);
headers are read per request only when the peer is trusted, and only the
rare requests that carry proxy headers pay for parsing them.

A forwarding chain is read from the right: each proxy appends the address it
received the request from, so the right-most entry that is *not* one of our
trusted proxies is the real client. The left-most entry is whatever the client
chose to send and is never believed on its own (taking it, as some servers do,
lets any client behind a trusted proxy claim any address).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_SCHEMES = frozenset({"http", "https", "ws", "wss"})

# Scope key set on every request whose peer is a trusted proxy, holding that
# peer's address (the ``client`` before any rewrite; None for a unix-socket
# peer). Plugins that must know whether to believe other headers of the
# request (``request_id`` with X-Request-ID) read it: by the time an ASGI
# wrapper runs, ``client`` may already be the real client.
TRUSTED_PEER_KEY = "pounce.trusted_peer"


class ProxyTrust:
    """``forwarded_allow_ips``: addresses, CIDR networks, ``*``, and
    ``unix`` for unix-socket peers (trusted only when listed, or with ``*``)."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.any = False
        self.unix = False
        self.networks: list[Network] = []
        self.names: set[str] = set()
        for item in allowed:
            item = item.strip()
            if item == "*":
                self.any = True
            elif item in ("unix", "unix:"):
                self.unix = True
            elif item:
                try:
                    self.networks.append(ipaddress.ip_network(item, strict=False))
                except ValueError:
                    self.names.add(item)

    def trusts(self, host: str | None) -> bool:
        """Is a peer at ``host`` (None for a unix-socket peer) a trusted proxy?"""
        if self.any:
            return True
        if host is None:
            return self.unix
        if host in self.names:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def _pick(self, hops: list[str]) -> int:
        """Index of the right-most hop that is not a trusted proxy (0 if all are)."""
        for index in range(len(hops) - 1, -1, -1):
            if not self.trusts(hops[index]):
                return index
        return 0

    def apply(self, scope: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
        """Rewrite ``client``, ``scheme`` and the ``host`` header from a trusted proxy.

        RFC 7239 ``Forwarded`` wins over the ``X-Forwarded-*`` family when both
        are present. Also notes the peer itself under ``TRUSTED_PEER_KEY``.
        """
        scope[TRUSTED_PEER_KEY] = scope["client"]
        for name, _ in headers:
            if name in PROXY_HEADERS:
                break
        else:
            return  # a trusted peer that forwarded nothing (the common case)
        forwarded: list[bytes] = []
        xff: list[bytes] = []
        protos: list[bytes] = []
        hosts: list[bytes] = []
        for name, value in headers:
            if name == b"forwarded":
                forwarded.append(value)
            elif name == b"x-forwarded-for":
                xff.append(value)
            elif name == b"x-forwarded-proto":
                protos.append(value)
            elif name == b"x-forwarded-host":
                hosts.append(value)
        client = proto = host = None
        if forwarded:
            client, proto, host = self._from_forwarded(b",".join(forwarded))
        else:
            hops = _split(xff)
            index = self._pick(hops) if hops else -1
            if hops:
                client = hops[index]
            proto_list = _split(protos)
            if proto_list:
                proto = proto_list[index] if len(proto_list) == len(hops) else proto_list[-1]
            host_list = _split(hosts)
            if host_list:
                host = host_list[index] if len(host_list) == len(hops) else host_list[-1]
        if client:
            scope["client"] = _address(client)
        if proto is not None:
            value = proto.lower()
            if value in _SCHEMES:
                if scope["type"] == "websocket":
                    value = "wss" if value in ("https", "wss") else "ws"
                else:
                    value = "https" if value in ("https", "wss") else "http"
                scope["scheme"] = value
        if host:
            encoded = host.encode("latin-1")
            scope["headers"] = [(n, v) for n, v in scope["headers"] if n != b"host"] + [(b"host", encoded)]

    def _from_forwarded(self, value: bytes) -> tuple[str | None, str | None, str | None]:
        elements: list[dict[str, str]] = []
        for element in value.decode("latin-1").split(","):
            pairs: dict[str, str] = {}
            for pair in element.split(";"):
                key, sep, val = pair.partition("=")
                if sep:
                    pairs[key.strip().lower()] = val.strip().strip('"')
            elements.append(pairs)
        hops = [e.get("for", "") for e in elements]
        chosen = elements[self._pick([_address(h)[0] for h in hops])] if elements else {}
        return chosen.get("for"), chosen.get("proto"), chosen.get("host")


# The request headers a trusted proxy forwards the client's view in.
PROXY_HEADERS = frozenset({b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})


def _split(values: list[bytes]) -> list[str]:
    """Comma-separated header values (possibly repeated) as stripped strings."""
    if not values:
        return []
    return [item.strip() for item in b",".join(values).decode("latin-1").split(",") if item.strip()]


def _address(value: str) -> tuple[str, int]:
    """``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1`` → (host, port)."""
    value = value.strip().strip('"')
    if value.startswith("["):
        addr, _, rest = value[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") and _is_port(rest[1:]) else 0
        return addr, port
    if value.count(":") == 1:
        addr, _, port_text = value.partition(":")
        if _is_port(port_text):
            return addr, int(port_text)
    return value, 0


def _is_port(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts "²", which int() refuses."""
    return text.isascii() and text.isdigit() and len(text) <= 5
