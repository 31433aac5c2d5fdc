"""ASGI apps the HTTP/2 tests serve (importable as ``h2apps:NAME`` by a
``pounce`` subprocess too)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

# Requests in flight in the app, and streams that saw http.disconnect: the
# tests read these to see what the server did with the apps.
STATE: dict[str, Any] = {"running": 0, "peak": 0, "disconnects": 0, "started": 0}


async def read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("disconnected")
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Routes by path; anything else answers with what it saw."""
    kind = scope["type"]
    if kind == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if kind == "websocket":
        await websocket_echo(scope, receive, send)
        return
    path = scope["path"]
    STATE["started"] += 1
    STATE["running"] += 1
    STATE["peak"] = max(STATE["peak"], STATE["running"])
    try:
        if path == "/big":
            await big(scope, receive, send)
        elif path == "/trailers":
            await trailers(scope, receive, send)
        elif path == "/wait":
            await wait_for_disconnect(scope, receive, send)
        elif path == "/slow":
            await asyncio.sleep(float(scope["query_string"] or b"0.5"))
            await respond(send, b"slow done")
        elif path == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for i in range(5):
                await send({"type": "http.response.body", "body": b"part %d\n" % i, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        elif path == "/fail":
            raise RuntimeError("boom")
        elif path == "/hop":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"connection", b"keep-alive"), (b"transfer-encoding", b"chunked"),
                                    (b"x-ok", b"1")]})
            await send({"type": "http.response.body", "body": b"hop"})
        else:
            body = await read_body(receive)
            info = {
                "http_version": scope["http_version"], "method": scope["method"], "path": scope["path"],
                "query": scope["query_string"].decode(), "scheme": scope["scheme"],
                "headers": [[n.decode(), v.decode()] for n, v in scope["headers"]],
                "body_size": len(body), "extensions": sorted(scope.get("extensions", {})),
                "client": list(scope["client"] or ()),
            }
            await respond(send, json.dumps(info).encode(), b"application/json")
    finally:
        STATE["running"] -= 1


async def respond(send: Any, body: bytes, content_type: bytes = b"text/plain") -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
    await send({"type": "http.response.body", "body": body})


async def big(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/big?N`` sends N bytes in 64 KiB pieces."""
    size = int(scope["query_string"] or b"1048576")
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % size)]})
    piece = b"x" * 65536
    sent = 0
    if not size:
        await send({"type": "http.response.body", "body": b""})
    while sent < size:
        chunk = piece[:min(65536, size - sent)]
        sent += len(chunk)
        await send({"type": "http.response.body", "body": chunk, "more_body": sent < size})


async def trailers(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "trailers": True, "headers": []})
    await send({"type": "http.response.body", "body": b"with trailers"})
    await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")]})


async def wait_for_disconnect(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Never answers; counts the disconnect it gets."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            STATE["disconnects"] += 1
            return


async def websocket_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept", "subprotocol": (scope["subprotocols"] or [None])[0]})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "close":
            await send({"type": "websocket.close", "code": 4000})
            continue
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": "echo " + message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
