"""Small ASGI apps the tests serve (importable as ``testapps:NAME``)."""

from __future__ import annotations

import asyncio
from typing import Any


async def read_body(receive: Any) -> bytes:
    """The whole request body (what arrived of it, if the client went away)."""
    body = b""
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"Hello, world!"})


async def echo_scope(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with a JSON dump of the scope (bytes decoded as latin-1)."""
    import json

    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started"] = "yes"
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return

    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return value.decode("latin-1")
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    body = await read_body(receive)
    data = plain({k: v for k, v in scope.items() if k != "extensions"})
    data["body"] = body.decode("latin-1")
    payload = json.dumps(data).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": payload})


async def failing_startup(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})


SLOW_STARTED = [0]  # requests ``slow`` has begun in this process (in-process tests wait on it)


async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Sleeps for ?seconds (default 1) before answering; says on stdout
    that it started, for a test that runs it in a ``pounce`` subprocess."""
    if scope["type"] != "http":
        return
    seconds = float(scope["query_string"].decode() or 1)
    SLOW_STARTED[0] += 1
    print(f"slow: sleeping {seconds:g} s", flush=True)
    await asyncio.sleep(seconds)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"done"})


def factory() -> Any:
    return hello


class Namespace:
    inner = hello
