"""ASGI scopes for requests and WebSocket handshakes, whatever the protocol.

What does not change during a connection (client and server addresses,
scheme, the ``tls`` extension, whether the peer is a trusted proxy) is
worked out once per connection into a :class:`ConnectionInfo`; a scope per
request is then one dict built from it and the request head. Proxy headers
are read only when the peer is trusted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from pounce.core.asgi.proxy import PROXY_HEADERS, TRUSTED_PEER_KEY

if TYPE_CHECKING:
    from pounce.core.asgi.context import AppContext
    from pounce.core.protocol.events import Request

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
# http_version as the scope spells it, by the protocol's bytes.
_HTTP_VERSIONS = {b"1.1": "1.1", b"1.0": "1.0", b"2": "2", b"3": "3"}
_TRAILERS: dict[str, Any] = {}
# The scope's method as text, by the request's bytes (h1fast gives these objects).
_METHODS = {m: m.decode("ascii") for m in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS")}
# ``http.response.pathsend`` as pounce advertises it: ``ranges`` says that
# the message may carry ``offset`` and ``count`` (a byte range of the file),
# which the ASGI extension itself lacks.
PATHSEND: dict[str, Any] = {"ranges": True}


class ConnectionInfo:
    """The scope fields of one connection."""

    __slots__ = ("client", "server", "scheme", "extensions", "trusted_proxy", "http_scope")

    def __init__(self, ctx: AppContext, client: tuple[str, int] | None, server: tuple[str, int | None] | None,
                 tls: dict[str, Any] | None = None, *, pathsend: bool = False) -> None:
        self.client = client
        self.server = server
        self.scheme = "https" if tls is not None else "http"
        # ASGI extensions fixed for the connection (``tls``, and
        # ``http.response.pathsend`` where the owner has ``send_file``);
        # copied per request.
        self.extensions: dict[str, Any] = {"tls": tls} if tls is not None else {}
        if pathsend:
            self.extensions["http.response.pathsend"] = PATHSEND
        proxy = ctx.proxy
        self.trusted_proxy = proxy is not None and proxy.trusts(client[0] if client else None)
        # What every ``http`` scope of the connection starts from (copied per
        # request, then the request's own fields are set): a dict copy costs
        # less than building the dict anew.
        root = ctx.root_path
        self.http_scope: dict[str, Any] = {
            "type": "http", "asgi": ASGI_VERSION, "http_version": "1.1", "scheme": self.scheme,
            "path": "", "raw_path": b"", "query_string": b"", "root_path": root, "headers": [],
            "client": client, "server": server, "state": None, "extensions": None, "method": "GET",
        }


def peer_addresses(peer: Any, sockname: Any) -> tuple[tuple[str, int] | None, tuple[str, int | None] | None]:
    """``scope["client"]`` and ``scope["server"]`` from socket addresses
    (a unix socket's server is its path, with no port)."""
    client = server = None
    if isinstance(peer, tuple) and len(peer) >= 2:
        client = (str(peer[0]), int(peer[1]))
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        server = (str(sockname[0]), int(sockname[1]))
    elif isinstance(sockname, str) and sockname:
        server = (sockname, None)
    return client, server


def build_scope(ctx: AppContext, info: ConnectionInfo, request: Request, kind: str = "http") -> dict[str, Any]:
    """The scope for a request (``http``) or a handshake (``websocket``)."""
    if kind != "http":
        return _other_scope(ctx, info, request, kind)
    raw_path, _, query = request.target.partition(b"?")
    path = raw_path.decode("ascii")
    if "%" in path:
        path = unquote(path)
    scope = info.http_scope.copy()
    root = ctx.root_path
    if root:
        scope["path"] = root + path
        scope["raw_path"] = root.encode("utf-8") + raw_path
    else:
        scope["path"] = path
        scope["raw_path"] = raw_path
    scope["query_string"] = query
    headers = scope["headers"] = request.headers
    scope["state"] = ctx.lifespan_state.copy()
    extensions = scope["extensions"] = info.extensions.copy()
    if request.trailers:
        extensions["http.response.trailers"] = _TRAILERS
    method = request.method
    scope["method"] = _METHODS.get(method) or method.decode("ascii")
    version = request.http_version
    if version != b"1.1":
        scope["http_version"] = _HTTP_VERSIONS.get(version, "1.1")
    if info.trusted_proxy:
        # (ProxyTrust.apply's first step, spelt out: a trusted peer that
        # forwards nothing is the common case.)
        scope[TRUSTED_PEER_KEY] = scope["client"]
        for name, _ in headers:
            if name in PROXY_HEADERS:
                ctx.proxy.apply(scope, headers)  # type: ignore[union-attr]
                break
    return scope


def _other_scope(ctx: AppContext, info: ConnectionInfo, request: Request, kind: str) -> dict[str, Any]:
    """The scope of a WebSocket handshake (and any kind but ``http``)."""
    raw_path, _, query = request.target.partition(b"?")
    root = ctx.root_path
    path = raw_path.decode("ascii")
    if "%" in path:
        path = unquote(path)
    headers = request.headers
    scheme = "wss" if info.scheme == "https" else "ws"
    scope: dict[str, Any] = {
        "type": kind,
        "asgi": ASGI_VERSION,
        "http_version": _HTTP_VERSIONS.get(request.http_version, "1.1"),
        "scheme": scheme,
        "path": root + path if root else path,
        "raw_path": root.encode("utf-8") + raw_path if root else raw_path,
        "query_string": query,
        "root_path": root,
        "headers": headers,
        "client": info.client,
        "server": info.server,
        "state": ctx.lifespan_state.copy(),
        "extensions": dict(info.extensions),
    }
    if info.trusted_proxy:
        ctx.proxy.apply(scope, headers)  # type: ignore[union-attr]
    return scope
