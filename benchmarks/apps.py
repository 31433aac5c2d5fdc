"""The one ASGI app every benchmarked server runs, so only the server differs.

Routes (all answers are fixed, built once at import):

- ``GET /``        13-byte ``Hello, world!`` (the hello-world scenarios)
- ``GET /stream``  1 MiB streamed as 16 chunks of 64 KiB (``more_body``)
- ``GET /stream8m`` 8 MiB streamed the same way (128 chunks)
- ``GET /file1m``  a 1 MiB file through Starlette's ``FileResponse`` (sent
  by ``http.response.pathsend`` where the server offers it)
- ``POST /upload`` reads the whole request body, answers its length
- ``/ws``          WebSocket echo (text and bytes)

Plain ASGI 3 with no framework (a framework would dominate the per-request
cost and hide the server's own), except for the file route, which is about
how a framework's file response is served.
"""

from __future__ import annotations

import os
import tempfile
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
_STREAM8M_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/octet-stream"),
                (b"content-length", b"%d" % (len(CHUNK) * STREAM_CHUNKS * 8))],
}


def _file1m() -> Any:
    """Starlette's FileResponse for a 1 MiB file made once, or None without
    Starlette (the route then answers 404 and the scenario fails loudly)."""
    try:
        from starlette.responses import FileResponse
    except ImportError:
        return None
    path = os.path.join(tempfile.gettempdir(), "pounce-bench-file1m.bin")
    if not os.path.exists(path) or os.path.getsize(path) != 1024 * 1024:
        with open(path, "wb") as f:
            f.write(os.urandom(1024 * 1024))
    return lambda: FileResponse(path, media_type="application/octet-stream")


_FILE1M = _file1m()
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
        elif path == "/stream8m":
            await send(_STREAM8M_START)
            for _ in range(STREAM_CHUNKS * 8 - 1):
                await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
            await send({"type": "http.response.body", "body": CHUNK, "more_body": False})
        elif path == "/file1m" and _FILE1M is not None:
            await _FILE1M()(scope, receive, send)
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
