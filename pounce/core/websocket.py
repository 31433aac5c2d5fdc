"""WebSocket over asyncio, driven by wsproto (placeholder until the WebSocket
issue lands: upgrades are refused cleanly)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import h11

    from pounce.core.http11 import HttpProtocol


def handle_upgrade(protocol: HttpProtocol, event: h11.Request) -> None:
    """Take over ``protocol``'s transport for a WebSocket handshake."""
    protocol._reject(501, "WebSocket is not supported yet")
