"""The bundled demo app served by the root ``pounce.toml``.

A plain ASGI app (no framework) so it also shows what the protocol looks like.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import platform
import time
from typing import Any

import pounce

_STARTED = time.time()

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pounce demo</title>
<style>
 body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
 h1 {{ margin-bottom: .2rem; }} code, pre {{ background: #f3f3f3; padding: .1rem .3rem; border-radius: 4px; }}
 table {{ border-collapse: collapse; }} td {{ padding: .2rem .8rem .2rem 0; vertical-align: top; }}
 #events {{ height: 6rem; overflow: auto; background: #f8f8f8; padding: .5rem; font-family: monospace; }}
 .muted {{ color: #666; }}
</style>
</head>
<body>
<h1>pounce is running</h1>
<p class="muted">A pure-Python ASGI server. This page is the bundled demo app, <code>pounce.demo:app</code>.</p>
<table>
<tr><td>pounce</td><td>{version}</td></tr>
<tr><td>Python</td><td>{python} ({impl})</td></tr>
<tr><td>process</td><td>pid {pid}, up {uptime:.0f}s</td></tr>
<tr><td>you are</td><td>{client} via {scheme}, HTTP/{http_version}</td></tr>
<tr><td>served by</td><td>{server}</td></tr>
</table>
<h2>Endpoints</h2>
<ul>
<li><a href="/healthz">/healthz</a> — health check (JSON)</li>
<li><a href="/stream">/stream</a> — a chunked response, one line every 100 ms</li>
<li><a href="/events">/events</a> — server-sent events (live below)</li>
<li><code>POST /echo</code> — returns the request body: <code>curl -d hello {base}/echo</code></li>
<li><a href="/ws">/ws</a> — WebSocket echo page</li>
</ul>
<h2>Live server-sent events</h2>
<div id="events"></div>
<script>
const box = document.getElementById("events");
const source = new EventSource("/events");
source.onmessage = (e) => {{ box.textContent += e.data + "\\n"; box.scrollTop = box.scrollHeight; }};
</script>
</body>
</html>
"""

WS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pounce WebSocket echo</title>
<style>body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; }
#log { background: #f8f8f8; padding: .5rem; min-height: 4rem; font-family: monospace; white-space: pre-wrap; }</style>
</head><body>
<h1>WebSocket echo</h1>
<p><a href="/">back</a></p>
<form id="form"><input id="msg" value="hello pounce" autofocus> <button>send</button></form>
<p>status: <span id="status">connecting</span></p>
<div id="log"></div>
<script>
const log = document.getElementById("log");
const status = document.getElementById("status");
const scheme = location.protocol === "https:" ? "wss" : "ws";
const ws = new WebSocket(`${scheme}://${location.host}/ws`);
ws.onopen = () => { status.textContent = "open"; };
ws.onclose = (e) => { status.textContent = "closed (" + e.code + ")"; };
ws.onmessage = (e) => { const line = document.createElement("div"); line.className = "echo";
  line.textContent = e.data; log.appendChild(line); };
document.getElementById("form").onsubmit = (e) => { e.preventDefault();
  ws.send(document.getElementById("msg").value); };
</script>
</body></html>
"""


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    kind = scope["type"]
    if kind == "lifespan":
        await _lifespan(receive, send)
    elif kind == "http":
        await _http(scope, receive, send)
    elif kind == "websocket":
        await _websocket(scope, receive, send)


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _respond(send: Any, status: int, body: bytes, content_type: bytes) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", content_type), (b"content-length", b"%d" % len(body))],
    })
    await send({"type": "http.response.body", "body": body})


def _host(scope: dict[str, Any]) -> str:
    for name, value in scope["headers"]:
        if name == b"host":
            return value.decode("latin-1")
    server = scope.get("server") or ("localhost", None)
    return f"{server[0]}:{server[1]}" if server[1] else str(server[0])


async def _http(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope["path"]
    method = scope["method"]
    if path == "/" and method in ("GET", "HEAD"):
        client = scope.get("client")
        server = scope.get("server")
        page = PAGE.format(
            version=pounce.__version__,
            python=platform.python_version(),
            impl=platform.python_implementation(),
            pid=os.getpid(),
            uptime=time.time() - _STARTED,
            client=html.escape(f"{client[0]}:{client[1]}" if client else "unix socket"),
            scheme=html.escape(scope["scheme"]),
            http_version=scope["http_version"],
            server=html.escape(str(server[0]) + (f":{server[1]}" if server and server[1] else "") if server else "?"),
            base=html.escape(f"{scope['scheme']}://{_host(scope)}"),
        )
        await _respond(send, 200, page.encode(), b"text/html; charset=utf-8")
    elif path == "/healthz":
        body = json.dumps({"status": "ok", "pid": os.getpid()}).encode()
        await _respond(send, 200, body, b"application/json")
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
        for i in range(10):
            await send({"type": "http.response.body", "body": f"chunk {i}\n".encode(), "more_body": True})
            await asyncio.sleep(0.1)
        await send({"type": "http.response.body", "body": b""})
    elif path == "/events":
        await _events(receive, send)
    elif path == "/echo" and method == "POST":
        chunks = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        content_type = b"application/octet-stream"
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
        await _respond(send, 200, b"".join(chunks), content_type)
    elif path == "/ws" and method in ("GET", "HEAD"):
        await _respond(send, 200, WS_PAGE.encode(), b"text/html; charset=utf-8")
    else:
        await _respond(send, 404, b"not found\n", b"text/plain; charset=utf-8")


async def _events(receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"),
    ]})
    disconnected = asyncio.Event()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        disconnected.set()

    watcher = asyncio.ensure_future(watch())
    try:
        for i in range(1, 61):
            if disconnected.is_set():
                return
            stamp = time.strftime("%H:%M:%S")
            await send({"type": "http.response.body", "body": f"id: {i}\ndata: tick {i} at {stamp}\n\n".encode(),
                        "more_body": True})
            try:
                await asyncio.wait_for(disconnected.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
        await send({"type": "http.response.body", "body": b""})
    finally:
        watcher.cancel()


async def _websocket(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["path"] != "/ws":
        await send({"type": "websocket.close", "code": 1008})
        return
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
