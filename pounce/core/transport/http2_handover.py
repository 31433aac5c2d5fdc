"""The three ways a connection that started as HTTP/1.1 becomes HTTP/2.

Every connection is accepted by :class:`~pounce.core.transport.http.HttpProtocol`;
it hands its transport to an :class:`~pounce.core.transport.http2.H2Protocol`
(the way it hands over to WebSocket) when

- TLS negotiated ``h2`` by ALPN (seen at ``connection_made``);
- the first bytes are the HTTP/2 connection preface, h2c by prior knowledge
  (:class:`PrefaceSniffer`, on cleartext or on TLS without ALPN);
- a bodiless request asked for ``Upgrade: h2c`` with an ``HTTP2-Settings``
  header (RFC 7540 3.2; :func:`upgrade_to_h2c`, answered 101).

``[http2] enabled = false`` (``--no-http2``) turns all three off.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from pounce.core.protocol.events import Request
from pounce.core.protocol.http2 import PREFACE, H2Connection
from pounce.core.protocol.responses import render_head
from pounce.core.transport.connection import reading_for
from pounce.core.transport.http2 import H2Protocol

if TYPE_CHECKING:
    from pounce.core.asgi.scope import ConnectionInfo
    from pounce.core.protocol.http11 import H1Connection
    from pounce.core.transport.context import WorkerContext


class HttpProtocol(Protocol):
    """What the hand-over takes from the HTTP/1.1 connection
    (:class:`pounce.core.transport.http.HttpProtocol`, which imports this
    module: described here rather than imported back)."""

    ctx: WorkerContext
    conn: H1Connection
    transport: Any
    info: ConnectionInfo | None
    closed: bool
    over_limit: bool
    read_paused: bool

    @property
    def client(self) -> tuple[str, int] | None: ...

    def write(self, data: bytes) -> None: ...

    def _cancel_timer(self) -> None: ...

__all__ = ["PrefaceSniffer", "hand_over", "upgrade_to_h2c"]

logger = logging.getLogger("pounce.worker")

_PREFACE_SIZE = len(PREFACE)


class PrefaceSniffer:
    """Looks at a connection's first bytes for the HTTP/2 preface.

    :meth:`feed` returns the bytes to give HTTP/1.1 (the first bytes are not
    the preface), ``None`` while they could still be it (held), and the
    sniffer's ``found`` is set when they are (the caller hands over with
    :attr:`held`).
    """

    __slots__ = ("held", "found")

    def __init__(self) -> None:
        self.held = b""
        self.found = False

    def feed(self, data: bytes) -> bytes | None:
        buf = self.held + data if self.held else data
        head = buf[:_PREFACE_SIZE]
        if head != PREFACE[:len(head)]:
            self.held = b""
            return buf
        self.held = buf
        if len(head) == _PREFACE_SIZE:
            self.found = True
        return None


def hand_over(protocol: HttpProtocol, data: bytes = b"", upgrade: tuple[bytes, Request] | None = None) -> None:
    """Move ``protocol``'s transport to a new HTTP/2 connection."""
    ctx = protocol.ctx
    transport = protocol.transport
    assert transport is not None and protocol.info is not None
    protocol._cancel_timer()
    protocol.write_unsent()
    protocol.closed = True
    # (Not yet counted when ALPN chose h2 at connection_made: look then.)
    over_limit = protocol.over_limit if protocol in ctx.connections else None
    ctx.connections.discard(protocol)
    h2 = reading_for(H2Protocol, ctx.loop)(ctx)  # type: ignore[arg-type]
    transport.set_protocol(h2)
    if protocol.read_paused:
        protocol.read_paused = False
        transport.resume_reading()
    h2.take_over(transport, protocol.info, data, upgrade, over_limit)


def upgrade_to_h2c(protocol: HttpProtocol, request: Request) -> bool:
    """Answer ``Upgrade: h2c`` with 101 and go on in HTTP/2, the request
    becoming stream 1; False (serve it on HTTP/1.1) when the upgrade cannot
    be taken: a request with a body, no usable ``HTTP2-Settings``."""
    settings = None
    for name, value in request.headers:
        if name == b"http2-settings":
            if settings is not None:
                return False
            settings = value
    if settings is None or request.content_length or request.framing != "content-length":
        return False
    try:
        H2Connection(protocol.ctx.http2).upgrade(settings, request)  # (a dry run: is the header usable?)
    except ValueError as exc:
        logger.debug("h2c upgrade from %s refused: %s", protocol.client, exc)
        return False
    protocol.write(render_head(101, [(b"connection", b"Upgrade"), (b"upgrade", b"h2c")]))
    held = protocol.conn.take_held()
    hand_over(protocol, held, (settings, request))
    return True
