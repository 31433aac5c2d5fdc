"""WebSocket protocol state without I/O: the opening handshake and the frame
session, both driven by wsproto.

Nothing here touches a socket, a loop or a timer. The handshake functions turn
a request head into a verdict (accept material or an HTTP error) and build the
headers (and, for HTTP/1.1, the ``101`` bytes) that accept it; :class:`WebSocketSession` turns received bytes into
ASGI ``websocket.receive`` / ``websocket.disconnect`` messages and ASGI sends
into bytes. :mod:`pounce.core.asgi.websocket` runs the ASGI side and
:mod:`pounce.core.transport.websocket` moves the bytes; keeping them apart
means the protocol rules can be exercised with bytes alone.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.utilities import LocalProtocolError, generate_accept_token, split_comma_header

from pounce.core.protocol.events import Request
from pounce.core.protocol.responses import render_head
from pounce.core.protocol.wsfast import BINARY, PING, PONG, TEXT, frame, read_frames

# RFC 6455 close codes pounce itself sends.
NORMAL = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
ABNORMAL = 1006  # never on the wire: the connection died without a close frame
INVALID_DATA = 1007
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011
SERVICE_RESTART = 1012

_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE = re.compile(rb"[\x00\r\n]")


class HandshakeError(Exception):
    """The upgrade request is not a valid WebSocket handshake; answer it with
    ``status`` (and ``headers``) without ever calling the app."""

    def __init__(self, status: int, message: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.headers = list(headers)


@dataclass(frozen=True)
class Handshake:
    """What a valid opening handshake asked for."""

    key: bytes
    subprotocols: list[str] = field(default_factory=list)
    extension_offers: list[str] = field(default_factory=list)


_ASCII_ONLY = frozenset({b"connection", b"sec-websocket-key", b"sec-websocket-version",
                         b"sec-websocket-protocol", b"sec-websocket-extensions"})


def parse_handshake(request: Request) -> Handshake:
    """Validate an ``Upgrade: websocket`` request per RFC 6455 section 4.2.1.

    A wrong or missing version gets 426 with ``Sec-WebSocket-Version: 13`` so a
    client can retry with the version we speak; anything else malformed is 400.
    """
    if request.method != b"GET":
        raise HandshakeError(400, "WebSocket handshake must use GET")
    if request.http_version != b"1.1":
        raise HandshakeError(400, "WebSocket handshake needs HTTP/1.1")
    key: bytes | None = None
    version: bytes | None = None
    connection_upgrade = False
    has_body = False
    subprotocols: list[str] = []
    offers: list[str] = []
    for name, value in request.headers:
        if name in _ASCII_ONLY and not value.isascii():
            # HTTP allows obs-text in values (a cookie may carry it); these
            # headers cannot, and wsproto's comma splitter would raise on it.
            raise HandshakeError(400, "non-ASCII WebSocket handshake header")
        if name == b"sec-websocket-key":
            if key is not None:
                raise HandshakeError(400, "duplicate Sec-WebSocket-Key")
            key = value
        elif name == b"sec-websocket-version":
            version = value
        elif name == b"connection":
            connection_upgrade = connection_upgrade or any(
                token.lower() == "upgrade" for token in split_comma_header(value)
            )
        elif name == b"sec-websocket-protocol":
            subprotocols.extend(p for p in split_comma_header(value) if p)
        elif name == b"sec-websocket-extensions":
            offers.extend(o for o in split_comma_header(value) if o)
        elif name == b"content-length":
            has_body = value.strip() != b"0"
        elif name == b"transfer-encoding":
            has_body = True
    if version is None:
        raise HandshakeError(426, "missing Sec-WebSocket-Version", [(b"sec-websocket-version", b"13")])
    if version.strip() != b"13":
        raise HandshakeError(426, "unsupported Sec-WebSocket-Version", [(b"sec-websocket-version", b"13")])
    if not connection_upgrade:
        raise HandshakeError(400, "missing 'Connection: Upgrade'")
    if key is None:
        raise HandshakeError(400, "missing Sec-WebSocket-Key")
    try:
        nonce = base64.b64decode(key.strip(), validate=True)
    except (binascii.Error, ValueError):
        nonce = b""
    if len(nonce) != 16:
        raise HandshakeError(400, "Sec-WebSocket-Key is not 16 base64-encoded bytes")
    if has_body:
        raise HandshakeError(400, "WebSocket handshake must not have a body")
    return Handshake(key=key.strip(), subprotocols=subprotocols, extension_offers=offers)


def parse_h2_handshake(request: Request) -> Handshake:
    """Validate an HTTP/2 extended CONNECT with ``:protocol websocket``
    (RFC 8441 section 5): the version must be 13 (426 otherwise, as over
    HTTP/1.1); there is no key to answer and no Upgrade/Connection header
    (HTTP/2 has none), the stream itself is the WebSocket."""
    if request.method != b"CONNECT" or (request.upgrade or b"").lower() != b"websocket":
        raise HandshakeError(400, "WebSocket over HTTP/2 must use extended CONNECT with :protocol websocket")
    version: bytes | None = None
    subprotocols: list[str] = []
    offers: list[str] = []
    for name, value in request.headers:
        if name in _ASCII_ONLY and not value.isascii():
            raise HandshakeError(400, "non-ASCII WebSocket handshake header")
        if name == b"sec-websocket-version":
            version = value
        elif name == b"sec-websocket-protocol":
            subprotocols.extend(p for p in split_comma_header(value) if p)
        elif name == b"sec-websocket-extensions":
            offers.extend(o for o in split_comma_header(value) if o)
    if version is None or version.strip() != b"13":
        raise HandshakeError(426, "missing or unsupported Sec-WebSocket-Version",
                             [(b"sec-websocket-version", b"13")])
    return Handshake(key=b"", subprotocols=subprotocols, extension_offers=offers)


def negotiate_deflate(offers: Iterable[str]) -> tuple[PerMessageDeflate, bytes] | None:
    """Accept the first permessage-deflate offer whose parameters we can honour.

    Each offer gets a fresh extension object, so a rejected offer leaves no
    half-applied parameters behind. Returns the extension and the header value.
    """
    for offer in offers:
        if offer.split(";", 1)[0].strip().lower() != PerMessageDeflate.name:
            continue
        extension = PerMessageDeflate()
        try:
            params = extension.accept(offer)
        except ValueError:  # a malformed parameter value: skip this offer
            continue
        if params is None or params is False:
            continue
        value = PerMessageDeflate.name if params in (True, "") else f"{PerMessageDeflate.name}; {params}"
        return extension, value.encode("ascii")
    return None


def check_headers(headers: Iterable[Any]) -> list[tuple[bytes, bytes]]:
    """App-supplied response headers as lowercase bytes pairs, refusing
    anything that could split the response (CR, LF, NUL, bad names)."""
    out: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        name = bytes(name).lower()
        value = bytes(value)
        if not _TOKEN.match(name) or _BAD_VALUE.search(value):
            raise RuntimeError(f"invalid header {name!r}: {value!r}")
        out.append((name, value))
    return out


def negotiate(
    handshake: Handshake,
    *,
    subprotocol: str | None,
    app_headers: list[tuple[bytes, bytes]],
    deflate: bool,
) -> tuple[list[tuple[bytes, bytes]], list[Extension]]:
    """The headers that accept a handshake (after the upgrade mechanics) and
    the extensions now in force, for any protocol carrying the WebSocket.

    The spec says the subprotocol comes in the ``subprotocol`` key, never as a
    header; an app that puts it in a header anyway gets it honoured (and
    checked) the same way rather than sent twice.
    """
    if subprotocol is None:
        for name, value in app_headers:
            if name == b"sec-websocket-protocol":
                subprotocol = value.decode("latin-1").strip()
    if subprotocol is not None and subprotocol not in handshake.subprotocols:
        raise RuntimeError(f"subprotocol {subprotocol!r} was not offered by the client")
    headers: list[tuple[bytes, bytes]] = []
    if subprotocol is not None:
        headers.append((b"sec-websocket-protocol", subprotocol.encode("ascii")))
    extensions: list[Extension] = []
    if deflate:
        agreed = negotiate_deflate(handshake.extension_offers)
        if agreed is not None:
            extensions.append(agreed[0])
            headers.append((b"sec-websocket-extensions", agreed[1]))
    headers += [(n, v) for n, v in app_headers if n not in _RESERVED]
    return headers, extensions


_RESERVED = frozenset({b"upgrade", b"connection", b"sec-websocket-accept", b"sec-websocket-protocol",
                       b"sec-websocket-extensions"})


def switching_protocols(handshake: Handshake, headers: list[tuple[bytes, bytes]],
                        default_headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The HTTP/1.1 ``101 Switching Protocols`` that accepts ``handshake``,
    with the :func:`negotiate` ``headers``; the default headers go first unless
    the app set its own of the same name."""
    names = {name for name, _ in headers}
    mechanics = [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", generate_accept_token(handshake.key)),
    ]
    return render_head(101, [(n, v) for n, v in default_headers if n not in names] + mechanics + headers)


class WebSocketSession:
    """An open WebSocket: wsproto frames in, ASGI messages out, and back.

    Received fragments are reassembled here and ``max_message_size`` is
    enforced while a message grows, so an oversized message is refused (close
    1009) before it is held in full. Pings are answered here. Bytes to write
    collect in an outbox that the adapter drains with :meth:`data_to_send`.
    """

    def __init__(self, extensions: list[Extension], max_message_size: int, *, fast: bool = True) -> None:
        self.conn = Connection(ConnectionType.SERVER, extensions)
        self.max_message_size = max_message_size
        # Simple frames are read and written by wsfast until the first frame
        # it does not take; from then on wsproto has the whole connection
        # (no extension may be in use: they rewrite frames).
        self.fast = fast and not extensions
        self._held = b""  # the start of a frame wsfast waits to see whole
        self._out = bytearray()
        self._parts: list[Any] = []
        self._size = 0
        #: the close code and reason reported to the app once the socket is done
        self.close_code: int | None = None
        self.close_reason = ""
        #: True when the transport should be closed once the outbox is written
        self.finished = False
        #: True once the app has been given its ``websocket.disconnect``
        self.reported = False
        self.pongs = 0

    # -- state ---------------------------------------------------------------

    @property
    def open(self) -> bool:
        """Messages may still be sent."""
        return self.conn.state is ConnectionState.OPEN

    def data_to_send(self) -> bytes:
        if not self._out:
            return b""
        out = bytes(self._out)
        self._out.clear()
        return out

    # -- inbound ---------------------------------------------------------------

    def receive_data(self, data: bytes | None) -> list[dict[str, Any]]:
        """Feed bytes (``None`` for end of stream); return ASGI messages."""
        conn = self.conn
        if conn.state in (ConnectionState.CLOSED, ConnectionState.REMOTE_CLOSING) or self.finished:
            return self._done(ABNORMAL, "") if data is None else []
        messages: list[dict[str, Any]] = []
        if self.fast:
            if data is None:
                # The end of the stream: what wsfast held is wsproto's to judge.
                self.fast = False
                if self._held:
                    conn.receive_data(self._held)
                    self._held = b""
            else:
                if self._held:
                    data = self._held + data
                    self._held = b""
                if conn.state is ConnectionState.OPEN and not self._parts:
                    frames, used, stop = read_frames(data, self.max_message_size)
                    for opcode, payload in frames:
                        if opcode == TEXT:
                            messages.append({"type": "websocket.receive", "text": payload})
                        elif opcode == BINARY:
                            messages.append({"type": "websocket.receive", "bytes": payload})
                        elif opcode == PING:
                            self._out += frame(PONG, payload)
                        else:
                            self.pongs += 1
                    if not stop:
                        if used < len(data):
                            self._held = data[used:]
                        return messages
                    data = data[used:]
                self.fast = False  # the rest, and everything after it, is wsproto's
        try:
            conn.receive_data(data)
        except LocalProtocolError:
            return messages
        for event in conn.events():
            kind = type(event)
            if kind is TextMessage or kind is BytesMessage:
                if conn.state is not ConnectionState.OPEN:
                    continue  # we already closed: discard whatever the peer still sends
                message = self._on_data(event)  # type: ignore[arg-type]
                if message is not None:
                    messages.append(message)
            elif kind is Ping:
                if conn.state is ConnectionState.OPEN:
                    self._out += conn.send(Pong(payload=event.payload))  # type: ignore[attr-defined]
            elif kind is Pong:
                self.pongs += 1
            elif kind is CloseConnection:
                messages += self._on_close(event)  # type: ignore[arg-type]
                break
        return messages

    def _on_data(self, event: TextMessage | BytesMessage) -> dict[str, Any] | None:
        data = event.data
        # The limit is in bytes; an ASCII str (the common case) has as many
        # characters as UTF-8 bytes, and isascii() is a flag check.
        self._size += len(data) if not isinstance(data, str) or data.isascii() else len(data.encode())
        if self._size > self.max_message_size:
            self._parts.clear()
            # The parser is still in step: keep reading (and discarding) until
            # the peer answers our close, so it is not cut off mid-send.
            return self._fail(MESSAGE_TOO_BIG, "message too big", parser_alive=True)
        if not event.message_finished:
            self._parts.append(data)
            return None
        if self._parts:
            self._parts.append(data)
            data = "".join(self._parts) if type(event) is TextMessage else b"".join(self._parts)
            self._parts.clear()
        self._size = 0
        if type(event) is TextMessage:
            return {"type": "websocket.receive", "text": data}
        return {"type": "websocket.receive", "bytes": bytes(data)}

    def _on_close(self, event: CloseConnection) -> list[dict[str, Any]]:
        conn = self.conn
        state = conn.state
        if state is ConnectionState.REMOTE_CLOSING:
            # The peer started the closing handshake: echo its code, then done.
            self._out += conn.send(CloseConnection(code=event.code))
            self.finished = True
            return self._done(event.code, event.reason or "")
        if state is ConnectionState.CLOSED:
            # The peer answered our close, or the stream ended without one.
            self.finished = True
            return self._done(event.code, event.reason or "")
        if state is ConnectionState.LOCAL_CLOSING:
            # Garbage after our own close frame: stop reading, the close is sent.
            self.finished = True
            return self._done(event.code, event.reason or "")
        # Still OPEN: wsproto reports a frame it could not parse as a close
        # event carrying the code to send (1002, 1007, 1009).
        return [self._fail(event.code, event.reason or "", parser_alive=False)]

    def _fail(self, code: int, reason: str, *, parser_alive: bool) -> dict[str, Any]:
        """Close because of what the peer sent; the app hears the same code.

        After a parse failure the byte stream is out of step and the peer's
        reply could never be read, so the transport closes right away.
        """
        self._out += self.conn.send(CloseConnection(code=code, reason=reason[:120]))
        self.close_code, self.close_reason = code, reason
        self.finished = not parser_alive
        return self._done(code, reason)[0]

    def _done(self, code: int, reason: str) -> list[dict[str, Any]]:
        """The one ``websocket.disconnect`` for the app; the first code wins
        (after the app's own close, the app hears its own code back)."""
        if self.reported:
            return []
        self.reported = True
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        return [self.disconnect_message()]

    def disconnect_message(self) -> dict[str, Any]:
        return {"type": "websocket.disconnect", "code": self.close_code or ABNORMAL,
                "reason": self.close_reason}

    # -- outbound ----------------------------------------------------------------

    def send_message(self, data: str | bytes) -> bytes:
        """Frame one whole message. Raises ``LocalProtocolError`` once closed."""
        if self.fast and self.conn.state is ConnectionState.OPEN:
            if data.__class__ is str:
                return frame(TEXT, data.encode("utf-8"))  # type: ignore[union-attr]
            if data.__class__ is bytes:
                return frame(BINARY, data)  # type: ignore[arg-type]
        return self.conn.send(TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=data))

    def close(self, code: int, reason: str = "") -> bytes:
        """Start (or finish) the closing handshake from our side."""
        if self.conn.state not in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            return b""
        data = self.conn.send(CloseConnection(code=code, reason=reason or None))
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        if self.conn.state is ConnectionState.CLOSED:
            self.finished = True
        return data

    def ping(self, payload: bytes) -> bytes:
        if self.conn.state is not ConnectionState.OPEN:
            return b""
        return self.conn.send(Ping(payload=payload))
