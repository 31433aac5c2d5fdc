"""Which peers may tell us the real client, and reading what they say.

Trust is decided once per connection (the peer address does not change);
headers are read per request only when the peer is trusted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyTrust:
    """``forwarded_allow_ips``: addresses, CIDR networks, ``*``, and
    ``unix`` for unix-socket peers (always trusted when listed)."""

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
            else:
                try:
                    self.networks.append(ipaddress.ip_network(item, strict=False))
                except ValueError:
                    self.names.add(item)

    def trusts(self, host: str | None) -> bool:
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

    @staticmethod
    def apply(scope: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
        """Rewrite ``client``, ``scheme`` and the host header from a trusted proxy.

        RFC 7239 ``Forwarded`` wins over the ``X-Forwarded-*`` family when both
        are present. The left-most address is the original client.
        """
        forwarded = xff = proto = host = None
        for name, value in headers:
            if name == b"forwarded":
                forwarded = value
            elif name == b"x-forwarded-for":
                xff = value
            elif name == b"x-forwarded-proto":
                proto = value
            elif name == b"x-forwarded-host":
                host = value
        if forwarded is not None:
            first = forwarded.split(b",")[0]
            fwd_for = fwd_proto = fwd_host = None
            for pair in first.split(b";"):
                key, _, val = pair.strip().partition(b"=")
                val = val.strip().strip(b'"')
                key = key.strip().lower()
                if key == b"for":
                    fwd_for = val
                elif key == b"proto":
                    fwd_proto = val
                elif key == b"host":
                    fwd_host = val
            if fwd_for is not None:
                xff = fwd_for
            if fwd_proto is not None:
                proto = fwd_proto
            if fwd_host is not None:
                host = fwd_host
        if xff is not None:
            client = xff.split(b",")[0].strip().decode("latin-1")
            port = 0
            if client.startswith("["):
                addr, _, rest = client[1:].partition("]")
                client = addr
                if rest.startswith(":") and rest[1:].isdigit():
                    port = int(rest[1:])
            elif client.count(":") == 1:
                addr, _, port_text = client.partition(":")
                if port_text.isdigit():
                    client, port = addr, int(port_text)
            if client:
                scope["client"] = (client, port)
        if proto is not None:
            value = proto.split(b",")[0].strip().decode("latin-1").lower()
            if value in ("http", "https", "ws", "wss"):
                if scope["type"] == "websocket":
                    value = "wss" if value in ("https", "wss") else "ws"
                scope["scheme"] = value
        if host is not None:
            value = host.split(b",")[0].strip()
            scope["headers"] = [(n, v) for n, v in scope["headers"] if n != b"host"] + [(b"host", value)]
