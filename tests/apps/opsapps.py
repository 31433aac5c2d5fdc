"""Apps for the operations plugin tests (health, request_id, rate_limit).

``app`` answers every path with 200 and a small JSON body saying who served
it (pid, the request id the server assigned, the path), sleeps first on
``/slow?s=SECONDS`` (touching the file ``mark=PATH`` names as it starts,
so a test in another process knows it arrived), raises on ``/boom``, and counts the requests that reached
it (``/count`` answers the count: probes must not be in it).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from testapps import read_body

REACHED = {"requests": 0}


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": scope.get("state", {}).get("request_id", "-")})
        await send({"type": "websocket.close", "code": 1000})
        return
    path = scope["path"]
    if path != "/count":
        REACHED["requests"] += 1
    await read_body(receive)
    if path == "/boom":
        raise RuntimeError("boom")
    if path == "/slow":
        query = parse_qs(scope["query_string"].decode())
        if "mark" in query:
            Path(query["mark"][0]).touch()
        await asyncio.sleep(float(query.get("s", ["1"])[0]))
    body = json.dumps({
        "pid": os.getpid(),
        "path": path,
        "client": scope["client"][0] if scope.get("client") else None,
        "request_id": scope.get("state", {}).get("request_id"),
        "count": REACHED["requests"],
    }).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def sets_own_request_id(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app that sends its own X-Request-ID (the server must not add a second)."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"X-Request-ID", b"from-app")]})
    await send({"type": "http.response.body", "body": b"ok"})
