"""ASGI apps for the HTTP/3 tests (importable as ``h3apps:NAME``)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from typing import Any


async def who(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Which worker answered (pid and thread), and the scope's client."""
    if scope["type"] != "http":
        return
    body = json.dumps({"pid": os.getpid(), "thread": threading.get_ident(), "client": scope["client"],
                       "http_version": scope["http_version"]}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers after ``?seconds`` (default 1), to be in flight during a drain."""
    if scope["type"] != "http":
        return
    query = scope["query_string"].decode()
    seconds = float(query.partition("=")[2] or 1)
    await asyncio.sleep(seconds)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"done"})
