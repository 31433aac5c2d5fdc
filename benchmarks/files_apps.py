"""Apps for benchmarks/files_bench.py (static files and compression).

- ``plain``: ``GET /`` -> ``ok``, ``GET /json`` -> a 64 KiB JSON document in
  one body message (built once at import). pounce serves static files and
  compresses around it with its plugins; granian serves its static route
  around it.
- ``starlette_static``: Starlette's ``StaticFiles`` mounted at ``/static``
  (directory from ``FILES_BENCH_DIR``), ``plain`` for everything else.
- ``starlette_gzip``: ``plain`` inside Starlette's ``GZipMiddleware``
  (its defaults: minimum_size 500, compresslevel 9).
"""

from __future__ import annotations

import json
import os
from typing import Any

_ITEMS = []
while len(json.dumps(_ITEMS)) < 64 * 1024:
    i = len(_ITEMS)
    _ITEMS.append({"id": i, "name": f"item {i}", "price": round(i * 1.37, 2), "tags": ["a", "b", str(i % 7)],
                   "in_stock": i % 3 != 0})
JSON = json.dumps(_ITEMS).encode()

_JSON_LENGTH = b"%d" % len(JSON)


def _start(status: int, content_type: bytes, length: bytes) -> dict[str, Any]:
    # Fresh messages per request: Starlette's GZipMiddleware rewrites the
    # app's start and body messages in place, so shared ones would hand every
    # later request the first one's compressed body (and measure nothing).
    return {"type": "http.response.start", "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", length)]}


async def plain(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/":
        await send(_start(200, b"text/plain", b"2"))
        await send({"type": "http.response.body", "body": b"ok"})
    elif path == "/json":
        await send(_start(200, b"application/json", _JSON_LENGTH))
        await send({"type": "http.response.body", "body": JSON})
    else:
        await send(_start(404, b"text/plain", b"9"))
        await send({"type": "http.response.body", "body": b"not found"})


def _starlette_static() -> Any:
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    directory = os.environ.get("FILES_BENCH_DIR")
    if not directory:
        return None
    return Starlette(routes=[Mount("/static", StaticFiles(directory=directory)), Mount("/", plain)])


def _starlette_gzip() -> Any:
    from starlette.middleware.gzip import GZipMiddleware

    return GZipMiddleware(plain)


def __getattr__(name: str) -> Any:
    # Built on first use: a server that only runs ``plain`` needs no Starlette.
    if name == "starlette_static":
        return _starlette_static()
    if name == "starlette_gzip":
        return _starlette_gzip()
    raise AttributeError(name)
