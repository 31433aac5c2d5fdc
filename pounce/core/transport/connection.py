"""What every TCP connection of a worker does, whatever protocol it speaks.

:class:`Connection` is the asyncio ``BufferedProtocol`` base of the
protocols in this layer: reads land in the worker's shared read buffer and
are copied out at their exact size (why: ``WorkerContext.read_buffer``);
it sets ``TCP_NODELAY``, works out the connection's scope fields once, keeps
the connection in the worker's set, tracks flow control in both directions,
owns the one timer a connection has at a time, and closes without losing a
response to a reset (the lingering close). A protocol subclass adds what its
bytes mean.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import TYPE_CHECKING, Any, TypeVar

from pounce.core.asgi.scope import ConnectionInfo, peer_addresses
from pounce.core.asgi.stream import ClientDisconnected
from pounce.core.transport.tls import tls_extension

if TYPE_CHECKING:
    from pounce.core.asgi.stream import HttpStream
    from pounce.core.transport.context import WorkerContext

__all__ = ["LINGER", "Connection", "can_half_close", "reading_for", "set_nodelay"]

# A response's pieces are held for the end of the loop turn up to this many
# bytes (see Connection.write_part). Measured on the 1 MiB stream (64 KiB
# pieces, 16 connections, one core): 128 KiB 1,840 req/s, 256 KiB 2,490,
# 512 KiB 3,150, 1 MiB 1,450 (a write that size no longer fits the socket
# buffer at once and lands in asyncio's own, which copies it again);
# writing each piece at once, 1,540.
HOLD_LIMIT = 512 * 1024

# How long a closed connection keeps reading (and dropping) client bytes
# after its FIN, so that unread input does not turn the close into a reset.
LINGER = 1.0


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """TCP_NODELAY on every TCP connection, whatever made its socket."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


_P = TypeVar("_P", bound=asyncio.BaseProtocol)
_PLAIN_READS: dict[type, type] = {}


def reading_for(cls: type[_P], loop: asyncio.AbstractEventLoop) -> type[_P]:
    """``cls``, or a subclass of it that reads the way ``loop`` reads best.

    The protocols here are ``BufferedProtocol``s because asyncio's own loops
    read best into the worker's one buffer (see ``WorkerContext.read_buffer``).
    uvloop reads into a buffer of its own and makes the bytes object at its
    exact size in C; asked for a buffer instead, it calls ``get_buffer`` and
    ``buffer_updated``, two Python calls on every read where
    ``data_received`` is one. uvloop takes a protocol that is also an
    ``asyncio.Protocol`` as a plain one, so on any loop but asyncio's the
    subclass adds that base (and nothing else: ``data_received`` is the
    same method either way).
    """
    if isinstance(loop, asyncio.BaseEventLoop):
        return cls
    plain = _PLAIN_READS.get(cls)
    if plain is None:
        plain = _PLAIN_READS[cls] = type(cls.__name__, (cls, asyncio.Protocol),
                                         {"__module__": cls.__module__, "__qualname__": cls.__qualname__})
    return plain


class Connection(asyncio.BufferedProtocol):
    """One accepted connection: buffers, flow control, one timer, closing."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.read_buffer = ctx.read_buffer
        self.loop: asyncio.AbstractEventLoop = ctx.loop  # type: ignore[assignment]
        self.transport: asyncio.Transport | None = None
        self.info: ConnectionInfo | None = None
        self.closed = False
        self.lingering = False  # closed with FIN; dropping what still arrives
        self.eof_seen = False
        self.read_paused = False
        self.write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        # What is held for the end of the loop turn (see .turn), and its size.
        self.unsent: list[bytes] | None = None
        self.unsent_size = 0
        self.turn_writer = ctx.turn_writer_for(self.loop)
        # The loop's clock, without the method call where it is asyncio's own.
        self.clock = _clock_of(self.loop)

    @property
    def client(self) -> tuple[str, int] | None:
        return self.info.client if self.info is not None else None

    # -- asyncio callbacks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (No isinstance check: uvloop's transports are not asyncio.Transport
        # subclasses, yet have its methods.)
        self.transport = transport  # type: ignore[assignment]
        set_nodelay(transport)
        client, server = peer_addresses(transport.get_extra_info("peername"),
                                        transport.get_extra_info("sockname"))
        ssl_object = transport.get_extra_info("ssl_object")
        self.info = ConnectionInfo(self.ctx, client, server,
                                   tls_extension(ssl_object) if ssl_object else None, pathsend=True)
        self.ctx.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.ctx.connections.discard(self)
        self._cancel_timer()
        self._wake_writer()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self.read_buffer[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:  # pragma: no cover - every protocol has its own
        raise NotImplementedError

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_writer()

    def _wake_writer(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def drain(self, stream: HttpStream | None = None) -> None:
        """Wait while the peer does not read what was written."""
        if self.write_paused and not self.closed:
            self._drain_waiter = self.loop.create_future()
            await self._drain_waiter
            self._drain_waiter = None

    # -- writing --------------------------------------------------------------------

    def write_complete(self, data: bytes) -> None:
        """Write a complete response, or hold it for the end of the loop
        turn while other connections are served in it (:mod:`.turn`)."""
        unsent = self.unsent
        if unsent is not None:
            unsent.append(data)
            self.unsent_size += len(data)
            return
        if self.turn_writer.alone():
            self.transport.write(data)  # type: ignore[union-attr]
            return
        self._hold(data)

    def write_part(self, data: bytes) -> None:
        """Write a piece of a response that goes on, held as
        :meth:`write_complete` holds while the held bytes stay under
        ``HOLD_LIMIT``: a stream's pieces of one turn then go out in one
        send, and past the limit at once, so the transport's flow control
        still paces the app."""
        unsent = self.unsent
        if unsent is None:
            if len(data) >= HOLD_LIMIT or self.turn_writer.alone():
                self.transport.write(data)  # type: ignore[union-attr]
                return
            self._hold(data)
            return
        unsent.append(data)
        self.unsent_size += len(data)
        if self.unsent_size >= HOLD_LIMIT:
            self.write_unsent()

    def _hold(self, data: bytes) -> None:
        """Start holding: the turn writer writes it at the end of the turn."""
        self.unsent = [data]
        self.unsent_size = len(data)
        self.turn_writer.hold(self)

    def write_unsent(self) -> None:
        """Write what is held for the end of the turn, if anything: before
        anything else is written, before closing, before a hand-over."""
        parts = self.unsent
        if parts is not None:
            self.unsent = None
            transport = self.transport
            if not self.closed and transport is not None and not transport.is_closing():
                transport.write(parts[0] if len(parts) == 1 else b"".join(parts))

    def write(self, data: bytes) -> None:
        if self.unsent is not None:
            self.write_unsent()
        transport = self.transport
        # is_closing(): a failed send closes the transport at once but tells
        # us (connection_lost) only on the next loop iteration; writing into
        # it meanwhile makes asyncio log a warning per write.
        if not self.closed and not transport.is_closing():  # type: ignore[union-attr]
            transport.write(data)  # type: ignore[union-attr]

    def _write_or_raise(self, stream: HttpStream, data: bytes) -> None:
        """Write for an app's ``send``: a connection that is gone raises the
        ASGI disconnect error into the app instead."""
        if self.unsent is not None:
            self.write_unsent()
        transport = self.transport
        if self.closed or transport.is_closing():  # type: ignore[union-attr]
            stream.on_disconnect()
            raise ClientDisconnected("the client has disconnected")
        transport.write(data)  # type: ignore[union-attr]

    # -- closing ------------------------------------------------------------------------

    def _close(self) -> None:
        """Close after what was written, without losing it to a reset.

        Closing a TCP socket that still has unread input makes the kernel
        send RST, and the client then discards response bytes it has not
        read yet. So where the transport can half-close, send FIN after the
        response, read and drop whatever the client still sends, and close
        when it closes its side or after ``LINGER`` seconds ("lingering
        close"). The connection counts as open until then.
        """
        self._cancel_timer()
        if self.unsent is not None:
            self.write_unsent()
        transport = self.transport
        if not self.closed and transport is not None and not transport.is_closing():
            if not self.eof_seen and can_half_close(transport):
                try:
                    transport.write_eof()
                except OSError:  # the peer is gone already (ENOTCONN)
                    transport.close()
                else:
                    self.lingering = True
                    self._resume_reading()
                    self._timer = self.loop.call_later(LINGER, transport.close)
            else:
                transport.close()
                self.ctx.connections.discard(self)
        else:
            self.ctx.connections.discard(self)
        self.closed = True

    # -- the timer and reading ------------------------------------------------------

    def _set_timer(self, delay: float, callback: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(delay, callback) if delay > 0 else None

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _pause_reading(self) -> None:
        if not self.read_paused and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def _resume_reading(self) -> None:
        if self.read_paused and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]


def _clock_of(loop: asyncio.AbstractEventLoop) -> Any:
    """``loop.time``, or ``time.monotonic`` itself when that is all it does."""
    if loop is not None and type(loop).time is not asyncio.BaseEventLoop.time:
        return loop.time
    return time.monotonic


def can_half_close(transport: asyncio.BaseTransport) -> bool:
    try:
        return bool(transport.can_write_eof())  # type: ignore[attr-defined]
    except (NotImplementedError, AttributeError):  # wrapping transports
        return False
