"""WebSocket apps for subprocess tests (importable as ``wsapps:NAME``)."""

from __future__ import annotations

from typing import Any


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echo every message; on disconnect print the code so the test can read it."""
    if scope["type"] != "websocket":
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            print(f"app saw disconnect {message['code']}", flush=True)
            return
        await send({"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")})


async def http_only(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app written for HTTP alone: it trips over a websocket scope."""
    if scope["type"] == "lifespan":
        return
    method = scope["method"]  # KeyError on a websocket scope
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": method.encode()})
