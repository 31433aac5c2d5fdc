"""The HTTP/3 side of one worker: datagrams in, connections, datagrams out.

A :class:`QuicEndpoint` is what ``pounce_serve_listeners`` returns for the
UDP listener. Datagrams reach it straight from the UDP socket when it is the
only worker, or from the datagram router over a local channel when there are
several (:mod:`.router`); either way it sends its own straight to the UDP
socket (every worker holds it, and the client sees one address). It finds
the connection by destination connection ID, takes new ones from Initial
packets (within ``max_connections``, with Retry when asked), answers the
rest statelessly (:mod:`.stateless`) or not at all: garbage and packets for
unknown connections are dropped without a reply.

Datagrams are read in batches, and each connection they touched sends once
after the batch; sends made by apps are gathered the same way, once per
loop turn (:meth:`schedule`). That is fewer, fuller packets and fewer
system calls than one send per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from aioquic.buffer import Buffer
from aioquic.h3.connection import ErrorCode
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE
from aioquic.quic.packet import QuicErrorCode, QuicPacketType, pull_quic_header

from pounce.plugins.http3.cids import CID_LENGTH, TaggedIds, random_id
from pounce.plugins.http3.connection import H3Connection
from pounce.plugins.http3.quic import ServerQuic
from pounce.plugins.http3.settings import MAX_UNI_STREAMS, H3Settings, quic_configuration
from pounce.plugins.http3.stateless import RetryTokens, close_initial, retry_packet, version_negotiation

if TYPE_CHECKING:
    from pounce.core.transport.listeners import Listener

__all__ = ["QuicEndpoint"]

logger = logging.getLogger("pounce.http3")

# Datagrams read per wake-up before the loop serves others.
READ_BATCH = 64
MAX_DATAGRAM = 65535
# 0-RTT session tickets kept per worker (each usable once).
MAX_TICKETS = 10000


class QuicEndpoint:
    """Serves the HTTP/3 listener in one worker (a ``ListenerService``)."""

    def __init__(self, worker: Any, listener: Listener, settings: H3Settings) -> None:
        self.worker = worker
        self.ctx = worker.ctx
        self.loop: asyncio.AbstractEventLoop = worker.loop
        self.settings = settings
        self.sock: socket.socket = listener.sockets[0]
        self.sock.setblocking(False)
        self.control: socket.socket | None = listener.sockets[1] if len(listener.sockets) > 1 else None
        self.channel: socket.socket | None = None
        self.route_key = bytes.fromhex(listener.options.get("route_key", ""))
        self.tag = 0
        self.configuration = quic_configuration(settings)
        self.versions = list(self.configuration.supported_versions)
        self.conns: dict[bytes, H3Connection] = {}
        self.live: set[H3Connection] = set()  # until aioquic is done with them
        self.open: set[H3Connection] = set()  # not closing yet: what max_connections counts
        self.pending: set[H3Connection] = set()
        self.accepting = True
        self.closed = False
        self.retry = RetryTokens() if settings.retry else None
        self.new_cid: Any = random_id
        self.tickets: OrderedDict[bytes, Any] = OrderedDict()
        name = self.sock.getsockname()
        self.server_address = (str(name[0]), int(name[1]))
        self.tls_info = _tls_extension(self.configuration)
        self._flush_handle: asyncio.Handle | None = None
        self._in_batch = False
        self._defaults_source: Any = None
        self._defaults: list[tuple[bytes, bytes]] = []

    # -- start and stop (ListenerService) ---------------------------------------------

    def start(self) -> None:
        if self.control is None:
            self.loop.add_reader(self.sock.fileno(), self._read_socket)
        else:
            from pounce.plugins.http3.router import register

            self.channel = register(self.control)
            self.loop.add_reader(self.channel.fileno(), self._read_channel)

    def stop_accepting(self) -> None:
        """The worker drains: new connections go elsewhere (or are refused)."""
        self.accepting = False
        if self.control is not None and self.tag:
            from pounce.plugins.http3.router import announce_draining

            announce_draining(self.control, self.tag)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        source = self.channel if self.channel is not None else self.sock
        with contextlib.suppress(Exception):
            self.loop.remove_reader(source.fileno())
        for conn in list(self.live):
            conn.abort()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        if self.channel is not None:
            self.channel.close()

    # -- reading ----------------------------------------------------------------------

    def _read_socket(self) -> None:
        recvfrom = self.sock.recvfrom
        now = self.loop.time()
        self._in_batch = True
        try:
            for _ in range(READ_BATCH):
                try:
                    data, addr = recvfrom(MAX_DATAGRAM)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:  # ICMP errors reported on the socket: ignore
                    logger.debug("UDP receive error: %s", exc)
                    continue
                self.datagram(data, addr, now)
        finally:
            self._in_batch = False
        self._flush_later()

    def _read_channel(self) -> None:
        from pounce.plugins.http3.router import DATA, TAG, unpack_datagram

        channel = self.channel
        assert channel is not None
        now = self.loop.time()
        self._in_batch = True
        try:
            for _ in range(READ_BATCH):
                try:
                    message = channel.recv(MAX_DATAGRAM + 32)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    message = b""
                if not message:  # the router is gone: nothing more will come
                    self.loop.remove_reader(channel.fileno())
                    break
                kind = message[:1]
                if kind == DATA:
                    data, addr = unpack_datagram(message)
                    self.datagram(data, addr, now)
                elif kind == TAG:
                    self.tag = message[1]
                    self.new_cid = TaggedIds(self.route_key, self.tag)
                    if not self.accepting:
                        self.stop_accepting()
        finally:
            self._in_batch = False
        self._flush_later()

    def datagram(self, data: bytes, addr: Any, now: float) -> None:
        """One datagram from ``addr``: to its connection, or maybe a new one."""
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=CID_LENGTH)
        except ValueError:
            return  # not QUIC: dropped without a word
        conn = self.conns.get(header.destination_cid)
        if conn is not None:
            self._deliver(conn, data, addr, now)
            return
        version = header.version
        if version is None or header.packet_type == QuicPacketType.VERSION_NEGOTIATION:
            return  # a short header for a connection we do not know
        if len(data) < SMALLEST_MAX_DATAGRAM_SIZE:
            return  # Initials come padded; anything smaller gets no answer
        if version not in self.versions:
            self.send(version_negotiation(header, self.versions), addr)
            return
        if header.packet_type == QuicPacketType.INITIAL:
            self._accept(header, data, addr, now)

    def _accept(self, header: Any, data: bytes, addr: Any, now: float) -> None:
        if not self.accepting or self.ctx.shutting_down or len(self.open) >= self.settings.max_connections:
            self.send(close_initial(header, QuicErrorCode.CONNECTION_REFUSED), addr)
            return
        original = header.destination_cid
        retry_cid = None
        if self.retry is not None:
            if not header.token:
                retry_cid = self.new_cid()
                self.send(retry_packet(header, retry_cid, self.retry.seal(addr, original, retry_cid)), addr)
                return
            original = self.retry.open(addr, header.destination_cid, header.token)
            if original is None:
                self.send(close_initial(header, QuicErrorCode.INVALID_TOKEN), addr)
                return
            retry_cid = header.destination_cid
        settings = self.settings
        early = settings.early_data
        quic = ServerQuic(
            configuration=self.configuration, original_destination_connection_id=original,
            retry_source_connection_id=retry_cid, new_cid=self.new_cid, max_streams_bidi=settings.max_concurrent_streams, max_streams_uni=MAX_UNI_STREAMS,
            session_ticket_fetcher=self._take_ticket if early else None,
            session_ticket_handler=self._keep_ticket if early else None,
        )
        conn = H3Connection(self, quic, addr)
        self.live.add(conn)
        self.open.add(conn)
        self.add_cid(conn, header.destination_cid)
        self.add_cid(conn, quic.host_cid)
        self._deliver(conn, data, addr, now)

    def _deliver(self, conn: H3Connection, data: bytes, addr: Any, now: float) -> None:
        try:
            conn.datagram_received(data, addr, now)
        except Exception:  # noqa: BLE001 - one connection's failure is not the worker's
            logger.exception("HTTP/3 connection from %s failed", addr)
            conn.close(ErrorCode.H3_INTERNAL_ERROR, "internal error")
        self.pending.add(conn)

    # -- connection bookkeeping ----------------------------------------------------------

    def add_cid(self, conn: H3Connection, cid: bytes) -> None:
        self.conns[cid] = conn
        conn.cids.add(cid)

    def remove_cid(self, conn: H3Connection, cid: bytes) -> None:
        if self.conns.get(cid) is conn:
            del self.conns[cid]
        conn.cids.discard(cid)

    def forget(self, conn: H3Connection) -> None:
        """aioquic is done with ``conn``."""
        for cid in conn.cids:
            if self.conns.get(cid) is conn:
                del self.conns[cid]
        conn.cids.clear()
        self.live.discard(conn)
        self.open.discard(conn)
        self.pending.discard(conn)

    def _keep_ticket(self, ticket: Any) -> None:
        tickets = self.tickets
        tickets[ticket.ticket] = ticket
        while len(tickets) > MAX_TICKETS:
            tickets.popitem(last=False)

    def _take_ticket(self, label: bytes) -> Any:
        # Each ticket serves one resumption: a replayed ClientHello with the
        # same ticket gets a full handshake, and its early data is refused.
        return self.tickets.pop(label, None)

    # -- writing ------------------------------------------------------------------------

    def send(self, data: bytes, addr: Any) -> None:
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            pass  # the socket buffer is full: QUIC's loss recovery resends
        except OSError as exc:
            logger.debug("UDP send to %s failed: %s", addr, exc)

    def schedule(self, conn: H3Connection) -> None:
        """``conn`` has something to send: it goes out once per loop turn."""
        self.pending.add(conn)
        if not self._in_batch and self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self._flush)

    def _flush_later(self) -> None:
        """After a batch of datagrams: send on the next loop turn rather than
        now. The apps' tasks for requests in the batch were scheduled first,
        so a simple response goes out in the same packets as the
        acknowledgements, not one flight after them."""
        if self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        pending = self.pending
        while pending:
            conn = pending.pop()
            try:
                conn.transmit()
            except Exception:  # noqa: BLE001
                logger.exception("HTTP/3 send to %s failed", conn.addr)

    def default_headers(self) -> list[tuple[bytes, bytes]]:
        """The worker's default response headers, less Alt-Svc (a client
        that speaks HTTP/3 needs no advertisement for it); refreshed when the
        worker renders them anew (once a second, for Date)."""
        source = self.ctx.default_headers.headers
        if source is not self._defaults_source:
            self._defaults_source = source
            self._defaults = [(name, value) for name, value in source if name != b"alt-svc"]
        return self._defaults


def _tls_extension(configuration: Any) -> dict[str, Any]:
    """``scope["extensions"]["tls"]``: TLS 1.3 always; no client certificate
    is asked for over HTTP/3."""
    from cryptography.hazmat.primitives.serialization import Encoding

    return {
        "server_cert": configuration.certificate.public_bytes(Encoding.PEM).decode("ascii"),
        "client_cert_chain": [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": 0x0304,
        "cipher_suite": None,
    }
