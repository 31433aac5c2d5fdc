"""The one ASGI app every benchmarked server runs, so only the server differs.

Routes (all answers are fixed, built once at import):

- ``GET /``        13-byte ``Hello, world!`` (the hello-world scenarios)
- ``GET /stream``  1 MiB streamed as 16 chunks of 64 KiB (``more_body``)
- ``POST /upload`` reads the whole request body, answers its length
- ``/ws``          WebSocket echo (text and bytes)

Plain ASGI 3 with no framework: a framework would dominate the per-request
cost and hide the server's own.
"""

from __future__ import annotations

from typing import Any

HELLO = b"Hello, world!"
CHUNK = b"x" * (64 * 1024)
STREAM_CHUNKS = 16  # 16 x 64 KiB = 1 MiB

_HELLO_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
}
_HELLO_BODY = {"type": "http.response.body", "body": HELLO, "more_body": False}
_STREAM_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/octet-stream"),
                (b"content-length", b"%d" % (len(CHUNK) * STREAM_CHUNKS))],
}
_NOT_FOUND_START = {
    "type": "http.response.start",
    "status": 404,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"9")],
}
_NOT_FOUND_BODY = {"type": "http.response.body", "body": b"not found", "more_body": False}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    kind = scope["type"]
    if kind == "http":
        path = scope["path"]
        if path == "/":
            await send(_HELLO_START)
            await send(_HELLO_BODY)
        elif path == "/stream":
            await send(_STREAM_START)
            for _ in range(STREAM_CHUNKS - 1):
                await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
            await send({"type": "http.response.body", "body": CHUNK, "more_body": False})
        elif path == "/upload":
            size = 0
            more = True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    return
                size += len(message.get("body", b""))
                more = message.get("more_body", False)
            body = b"%d" % size
            await send({
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
            })
            await send({"type": "http.response.body", "body": body, "more_body": False})
        else:
            await send(_NOT_FOUND_START)
            await send(_NOT_FOUND_BODY)
    elif kind == "websocket":
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.receive":
                if message.get("text") is not None:
                    await send({"type": "websocket.send", "text": message["text"]})
                else:
                    await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
            else:
                return
    elif kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
