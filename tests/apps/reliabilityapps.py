"""Apps for tests/reliability/ (importable as ``reliabilityapps:NAME``
in subprocesses: the fault tests run pounce as a user would)."""

from __future__ import annotations

import asyncio
from typing import Any

# Bytes /big has handed to send() so far, per process (read by /progress).
SENT = {"big": 0}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """/hello, /slow?SECONDS, /hang (never answers; prints that it hangs), /big (streams 256 MiB),
    /progress (how much of /big went into send so far)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/slow":
        await asyncio.sleep(float(scope["query_string"] or b"1"))
    elif path == "/hang":
        # Said on stdout so that a test can wait for it (the server's output).
        print("hanging on /hang", flush=True)
        await asyncio.Event().wait()
    elif path == "/big":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunk = b"x" * 65536
        for _ in range(4096):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            SENT["big"] += len(chunk)
        await send({"type": "http.response.body", "body": b""})
        return
    elif path == "/progress":
        body = b"%d" % SENT["big"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})
