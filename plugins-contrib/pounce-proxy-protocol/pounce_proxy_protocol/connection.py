"""The asyncio side: a protocol that reads the PROXY header off a new
connection and then hands the connection to pounce's own protocol.

It is installed with pounce's ``pounce_wrap_protocol`` hook, so it sees each
accepted connection first. Once the header is read it swaps itself out with
``transport.set_protocol``: from then on the transport talks to the HTTP
protocol directly and this module is off the data path, except that the
HTTP protocol holds a :class:`PeerTransport` which answers ``peername`` with
the client the balancer reported.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Iterable
from typing import Any

from pounce_proxy_protocol.parser import MissingHeader, ProxyHeaderError, parse

logger = logging.getLogger("pounce.proxy_protocol")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Trust:
    """Which peers may send a PROXY header: addresses, networks, ``unix``, ``*``."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.everyone = False
        self.unix = False
        self.networks: list[Network] = []
        for entry in entries:
            entry = entry.strip()
            if entry == "*":
                self.everyone = True
            elif entry == "unix":
                self.unix = True
            else:
                self.networks.append(ipaddress.ip_network(entry, strict=False))

    def trusts(self, peer: Any) -> bool:
        if self.everyone:
            return True
        if not isinstance(peer, tuple):  # unix sockets report "" or a path
            return self.unix
        try:
            ip = ipaddress.ip_address(peer[0])
        except ValueError:
            return False
        mapped = getattr(ip, "ipv4_mapped", None)
        if mapped is not None:
            ip = mapped
        return any(ip in net for net in self.networks)


class Settings:
    """Everything a connection needs, computed once per worker."""

    def __init__(self, trust: Trust, required: bool, timeout: float) -> None:
        self.trust = trust
        self.required = required
        self.timeout = timeout


class PeerTransport(asyncio.Transport):
    """The real transport, except that ``get_extra_info`` answers ``peername``
    (and ``proxy_destination``) from the PROXY header."""

    def __init__(self, transport: asyncio.Transport, extra: dict[str, Any]) -> None:
        super().__init__(extra)
        self._transport = transport

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in self._extra:
            return self._extra[name]
        return self._transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._transport.close()

    def abort(self) -> None:
        self._transport.abort()

    def write(self, data: Any) -> None:
        self._transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self._transport.writelines(list_of_data)

    def write_eof(self) -> None:
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


class ProxyProtocolReader(asyncio.Protocol):
    """Reads the PROXY header of one connection, then steps aside."""

    __slots__ = ("factory", "settings", "transport", "buffer", "timer", "done")

    def __init__(self, factory: Callable[[], Any], settings: Settings) -> None:
        self.factory = factory
        self.settings = settings
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.timer: asyncio.TimerHandle | None = None
        self.done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.settings.trust.trusts(transport.get_extra_info("peername")):
            # Untrusted peers never get to claim another address.
            self._hand_off(transport, b"")
            return
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.settings.timeout, self._reject, "timed out waiting for the header")

    def data_received(self, data: bytes) -> None:
        if self.done:
            return
        self.buffer += data
        try:
            result = parse(self.buffer)
        except MissingHeader:
            if self.settings.required:
                self._reject("a trusted peer sent no PROXY header")
            else:
                self._hand_off(self.transport, self.buffer)  # type: ignore[arg-type]
            return
        except ProxyHeaderError as exc:
            self._reject(str(exc))
            return
        if result is None:
            return
        header, consumed = result
        transport = self.transport
        assert transport is not None
        if header.source is not None:
            transport = PeerTransport(transport, {
                "peername": header.source,
                "proxy_destination": header.destination,
            })
        self._hand_off(transport, self.buffer[consumed:])

    def eof_received(self) -> bool | None:
        if not self.done:
            self._reject("the connection ended before the header")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()

    def _cancel(self) -> None:
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _reject(self, why: str) -> None:
        if self.done or self.transport is None:
            return
        self._cancel()
        logger.info("PROXY protocol: closing connection from %s: %s",
                    self.transport.get_extra_info("peername"), why)
        self.transport.abort()

    def _hand_off(self, transport: asyncio.Transport, rest: bytes) -> None:
        """Give the connection to the real protocol and leave the data path."""
        self._cancel()
        self.buffer = b""
        inner = self.factory()
        transport.set_protocol(inner)
        inner.connection_made(transport)
        if rest and not transport.is_closing():
            inner.data_received(rest)
