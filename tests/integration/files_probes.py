"""Test helpers for the static and compression plugins.

:class:`Probe` is a plugin whose wrapper sits outside every other one
(``tryfirst``, registered last): it records the ASGI messages the server is
handed. It also decides what the plugins see of ``http.response.pathsend``:
by default the extension is hidden (a server without it), with
``pathsend=True`` the probe offers it (with ``ranges`` if asked) and sends
the file's bytes itself, so the message shapes can be checked exactly; the
core's own pathsend is tested in ``test_pathsend.py``.
"""

from __future__ import annotations

import socket
from typing import Any

from pounce import hookimpl
from tests.helpers import read_until_closed

PATHSEND = "http.response.pathsend"


class Probe:
    name = "probe"

    def __init__(self, pathsend: bool = False, ranges: bool = False) -> None:
        self.pathsend = pathsend
        self.ranges = ranges
        # (request path, message) for every message sent, pathsend ones included.
        self.sent: list[tuple[str, dict[str, Any]]] = []
        # (request path, request headers) for every http request.
        self.requests: list[tuple[str, dict[bytes, bytes]]] = []

    def pathsends(self) -> list[dict[str, Any]]:
        return [m for _, m in self.sent if m["type"] == PATHSEND]

    def starts(self, path: str) -> list[dict[str, Any]]:
        return [m for p, m in self.sent if p == path and m["type"] == "http.response.start"]

    def response_header(self, path: str, name: bytes) -> bytes | None:
        """``name`` in the first response to ``path`` as the server got it."""
        headers = dict((bytes(n).lower(), bytes(v)) for n, v in self.starts(path)[0]["headers"])
        return headers.get(name)

    @hookimpl(tryfirst=True)
    def pounce_wrap_app(self, app: Any) -> Any:
        probe = self

        async def probed(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            probe.requests.append((scope["path"], dict(scope["headers"])))
            extensions = {k: v for k, v in scope.get("extensions", {}).items() if k != PATHSEND}
            if probe.pathsend:
                extensions[PATHSEND] = {"ranges": True} if probe.ranges else {}
            scope["extensions"] = extensions

            async def recording_send(message: dict[str, Any]) -> None:
                probe.sent.append((scope["path"], message))
                if message["type"] == PATHSEND:
                    with open(message["path"], "rb") as handle:
                        handle.seek(message.get("offset", 0))
                        count = message.get("count")
                        data = handle.read() if count is None else handle.read(count)
                    await send({"type": "http.response.body", "body": data})
                    return
                await send(message)

            await app(scope, receive, recording_send)

        return probed


def raw_get(port: int, target: str, headers: str = "") -> tuple[int, dict[str, str], bytes]:
    """One request with the target exactly as given (no client normalising
    ``..`` or percent-escapes); the status, headers and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n".encode("latin-1"))
        data, closed = read_until_closed(sock)
    assert closed, "the server did not close the connection"
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return status, fields, body
