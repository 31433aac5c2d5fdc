"""WebSocket over HTTP/2 (RFC 8441): placeholder, filled in below."""

from __future__ import annotations

from typing import Any


def open_websocket(protocol: Any, request: Any) -> Any:
    protocol.conn.reset(request.stream_id)
    return None
