"""Built-in plugin ``request_id``: one id per request, from the proxy or made here.

Off until ``[request_id] enabled = true`` (``--request-id``); then every HTTP
request and WebSocket handshake gets an id:

- taken from the ``X-Request-ID`` header (``[request_id] header``) when the
  peer that sent the request is trusted by ``[server] forwarded_allow_ips``
  and the value is sane (1 to 128 visible ASCII characters), so the id a
  front proxy assigned follows the request through;
- otherwise generated: a random prefix drawn once per worker (12 hex digits,
  48 bits) and a per-worker counter, e.g. ``5c1f09a3e7b2-1f``. Unique across
  workers and processes without any coordination, cheap (no system call per
  request), short, and ordered within a worker.

Where the id goes:

- ``scope["state"]["request_id"]`` (``STATE_KEY``): the per-request state
  dict, which frameworks expose (Starlette and FastAPI as
  ``request.state.request_id``);
- the response header of the same name (also on ``websocket.accept``),
  unless the app set it itself;
- the access log field ``request_id`` and the ``request_id`` key of JSON
  records, for the access record and for every record logged while the
  request runs (``pounce.plugins.logging.request_id_var``, a context
  variable, is set around the app call).

Which peer is trusted is read from the scope key the core sets for requests
from trusted proxies (``pounce.core.asgi.proxy.TRUSTED_PEER_KEY``); with
``proxy_headers = false`` the client address itself is checked against
``forwarded_allow_ips`` (it is then the peer).
"""

from __future__ import annotations

import itertools
import secrets
from typing import Any

from pounce import hookimpl
from pounce.core.asgi.proxy import TRUSTED_PEER_KEY, ProxyTrust
from pounce.core.options import OptionValueError

name = "request_id"
SECTION = "request_id"
STATE_KEY = "request_id"
MAX_LENGTH = 128

# Bytes allowed in a request id taken from a header: visible ASCII.
_VISIBLE = bytes(range(0x21, 0x7F))
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_START_TYPES = frozenset({"http.response.start", "websocket.accept", "websocket.http.response.start"})


def _check_header_name(value: str) -> None:
    if not value or any(c not in _TOKEN for c in value):
        raise OptionValueError("an HTTP header name such as X-Request-ID")


@hookimpl
def pounce_add_options(options: Any) -> None:
    add = options.add
    add(SECTION, "enabled", "bool", False,
        "Give every request an id: from a trusted proxy's header, else generated; sent back in "
        "the same header and put in the access log.", cli="--request-id")
    add(SECTION, "header", "str", "X-Request-ID",
        "Header carrying the id, read from peers in forwarded_allow_ips and set on the response.",
        cli="--request-id-header", metavar="NAME", validator=_check_header_name)


def valid_incoming(value: bytes) -> bool:
    """1 to ``MAX_LENGTH`` visible ASCII bytes (no spaces, no controls)."""
    return 0 < len(value) <= MAX_LENGTH and not value.translate(None, _VISIBLE)


def new_generator() -> Any:
    """A zero-argument callable giving this worker's next id."""
    prefix = secrets.token_hex(6) + "-"
    counter = itertools.count(1)

    def generate() -> str:
        return prefix + format(next(counter), "x")

    return generate


def _peer_trust(config: Any) -> Any:
    """A function ``scope -> bool``: may this request's own header be believed?"""
    if config.proxy_headers:
        # The core marks requests from trusted peers; no address to parse here.
        def trusted_by_core(scope: dict[str, Any]) -> bool:
            return TRUSTED_PEER_KEY in scope

        return trusted_by_core
    trust = ProxyTrust(config.forwarded_allow_ips)
    if trust.any:
        return lambda scope: True
    cache: dict[Any, bool] = {}

    def trusted_client(scope: dict[str, Any]) -> bool:
        client = scope.get("client")
        host = client[0] if client else None
        known = cache.get(host)
        if known is None:
            if len(cache) > 1024:
                cache.clear()
            known = cache[host] = trust.trusts(host)
        return known

    return trusted_client


@hookimpl(tryfirst=True)
def pounce_wrap_app(config: Any, app: Any) -> Any:
    """Once per worker: the wrapper, or None when the plugin is off."""
    section = config.section(SECTION)
    if not section.get("enabled", False):
        return None
    from pounce.plugins.logging import request_id_var

    header = section.get("header", "X-Request-ID").lower().encode("latin-1")
    generate = new_generator()
    trusted = _peer_trust(config)
    set_var, reset_var = request_id_var.set, request_id_var.reset

    async def request_id_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await app(scope, receive, send)
            return
        request_id = None
        if trusted(scope):
            for key, value in scope["headers"]:
                if key == header:
                    if valid_incoming(value):
                        request_id = value.decode("ascii")
                    break
        if request_id is None:
            request_id = generate()
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state[STATE_KEY] = request_id
        pair = (header, request_id.encode("ascii"))
        started = False

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] in _START_TYPES:
                started = True
                headers = message.get("headers") or ()
                if not any(key.lower() == header for key, _ in headers):
                    message = {**message, "headers": [*headers, pair]}
            await send(message)

        # Each request runs in a task of its own (a copy of the context), so
        # the variable cannot leak into another request. It is reset when the
        # app returns, but left set when it raises: the server logs that
        # error just after, and the record should carry the id.
        token = set_var(request_id)
        try:
            await app(scope, receive, send_with_id)
        except Exception:
            if kind == "http" and not started:
                await _send_500(send, pair)
            raise
        reset_var(token)

    return request_id_app


async def _send_500(send: Any, pair: tuple[bytes, bytes]) -> None:
    """The 500 the server would send for an app that raised before
    responding, sent here so that it carries the id the error is logged
    with. The server still logs the error (it is re-raised)."""
    body = b"Internal Server Error"
    try:
        await send({"type": "http.response.start", "status": 500, "headers": [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode("ascii")), pair]})
        await send({"type": "http.response.body", "body": body})
    except Exception:  # noqa: BLE001 - the client left; the app's error is what matters
        pass


@hookimpl
def pounce_banner(config: Any) -> str | None:
    section = config.section(SECTION)
    if not section.get("enabled", False):
        return None
    return f"request ids: {section.get('header', 'X-Request-ID')} (trusted from forwarded_allow_ips)"


__all__ = ["MAX_LENGTH", "STATE_KEY", "name", "new_generator", "valid_incoming"]
