"""One worker: an event loop that accepts on the listening sockets and runs
connections until told to stop.

Everything a connection needs that does not change per request is computed
once per worker and kept on its :class:`~pounce.core.transport.context.WorkerContext`.
Protocols read it; no pluggy hook is called per request or per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable

from pounce.core.transport.accept import SheddingSocket
from pounce.core.transport.allocator import tune_allocator
from pounce.core.transport.connection import reading_for
from pounce.core.transport.context import READ_BUFFER_SIZE, WorkerContext
from pounce.core.transport.http import HttpProtocol
from pounce.core.transport.listeners import Listener, ListenerService

__all__ = ["ACCEPT_GRACE", "READ_BUFFER_SIZE", "Worker", "WorkerContext"]

logger = logging.getLogger("pounce.worker")

# How long connections accepted just before a drain get to send their request.
ACCEPT_GRACE = 0.25

ProtocolFactory = Callable[[], asyncio.BaseProtocol]


class Worker:
    """Serves connections from ``sockets`` on the running loop until stopped.

    Used by every kind of worker (the single worker, threads, processes,
    subinterpreters: see :mod:`pounce.core.boot`). It owns ``sockets``: they
    are closed when it stops accepting (give it duplicates to keep yours); plugins see it in
    ``pounce_worker_started`` (``started``, called on the worker's loop before
    it accepts). ``wrap_protocol`` turns the core's protocol factory into the
    one plugins asked for (``pounce_wrap_protocol``), once; ``draining``
    announces the drain (``pounce_worker_draining``) and answers how many
    seconds to go on accepting first. ``listeners`` are plugins' listeners
    besides the TCP sockets (UDP for HTTP/3), which it also owns;
    ``serve_listeners`` asks their plugins to serve them
    (``pounce_serve_listeners``) once the TCP sockets accept.
    """

    def __init__(
        self,
        ctx: WorkerContext,
        sockets: list[socket.socket],
        *,
        started: Callable[[Worker], None] | None = None,
        wrap_protocol: Callable[[ProtocolFactory], ProtocolFactory] | None = None,
        draining: Callable[[Worker], float] | None = None,
        listeners: list[Listener] | None = None,
        serve_listeners: Callable[[Worker, list[Listener]], list[ListenerService]] | None = None,
    ) -> None:
        self.ctx = ctx
        self.config = ctx.config
        self.worker_id = ctx.worker_id
        self.sockets = sockets
        self.loop: asyncio.AbstractEventLoop | None = None
        self._started = started
        self._wrap_protocol = wrap_protocol
        self._draining = draining
        self.listeners: list[Listener] = list(listeners or [])
        self._serve_listeners = serve_listeners
        self._services: list[ListenerService] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._stop: asyncio.Event | None = None
        self._force = False
        self._date_timer: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        """Begin accepting on every socket."""
        tune_allocator()
        loop = self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        ctx = self.ctx
        ctx.loop = loop
        if self._started is not None:
            self._started(self)

        protocol = reading_for(HttpProtocol, loop)

        def factory() -> asyncio.BaseProtocol:
            return protocol(ctx)

        if self._wrap_protocol is not None:
            factory = self._wrap_protocol(factory)
        tls = ctx.tls
        for sock in self.sockets:
            server = await loop.create_server(
                factory, sock=SheddingSocket.listen_on(sock, tls=tls is not None), ssl=tls,
                backlog=self.config.backlog, ssl_handshake_timeout=ctx.header_timeout if tls else None,
            )
            self._servers.append(server)
        if self.listeners and self._serve_listeners is not None:
            self._services = list(self._serve_listeners(self, self.listeners))
        self._tick()

    def _tick(self) -> None:
        self.ctx.update_date()
        assert self.loop is not None
        self._date_timer = self.loop.call_later(1.0, self._tick)

    def stop(self, force: bool = False) -> None:
        """Ask the worker to stop; call from the worker's own loop thread."""
        self._force = self._force or force
        if self._stop is not None:
            self._stop.set()
        if force:
            for conn in list(self.ctx.connections):
                conn.abort()

    def stop_threadsafe(self, force: bool = False) -> None:
        if self.loop is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.stop, force)

    async def wait_stopped(self) -> None:
        assert self._stop is not None
        await self._stop.wait()

    async def drain(self, timeout: float) -> None:
        """Stop accepting, finish what was accepted, then stop.

        The listening sockets may be shared with a successor (rolling restart,
        reload, recycling), so nothing accepted may be lost: first stop
        *watching* the sockets (later clients wait in the backlog for whoever
        accepts next), let sockets accepted in the last loop step attach, and
        mark every connection so its next response is its last. For
        ``ACCEPT_GRACE`` requests already on the wire (on new or idle
        keep-alive connections) are still served, with ``Connection: close``;
        then idle connections are closed, anything newer gets 503, in-flight
        requests get until ``timeout`` and what is left is aborted.

        Before all that, plugins hear that the drain begins and may ask the
        worker to go on accepting for a while (``[health] shutdown_delay``:
        readiness says 503 while the load balancer catches up); that wait
        counts within ``timeout``.
        """
        ctx = self.ctx
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        deadline = started + timeout
        delay = self._draining(self) if self._draining is not None else 0.0
        keep_accepting_until = started + min(delay, timeout)
        while time.monotonic() < keep_accepting_until and not self._force:
            await asyncio.sleep(min(0.05, max(0.0, keep_accepting_until - time.monotonic())))
        stopped_at = time.monotonic()
        self._stop_accepting(loop)
        for service in self._services:
            service.stop_accepting()
        for _ in range(2):  # an accepted socket attaches one loop turn later
            await asyncio.sleep(0)
        for conn in list(ctx.connections):
            conn.shutdown()
        grace_end = stopped_at + min(ACCEPT_GRACE, max(0.0, deadline - stopped_at))
        while ctx.connections and time.monotonic() < grace_end and not self._force:
            await asyncio.sleep(0.02)
        ctx.shutting_down = True
        for conn in list(ctx.connections):
            conn.shutdown()
        for server in self._servers:
            server.close()
        # The worker owns the sockets it was given (it listened on duplicates):
        # closing them now refuses new clients instead of queueing them.
        for sock in self.sockets:
            sock.close()
        while ctx.connections and time.monotonic() < deadline and not self._force:
            await asyncio.sleep(0.05)
        for conn in list(ctx.connections):
            conn.abort()
        self._close_listeners()
        if self._date_timer is not None:
            self._date_timer.cancel()
        # Give cancelled connection tasks a moment to unwind.
        await asyncio.sleep(0)

    def _close_listeners(self) -> None:
        """The plugins' listeners outlive the TCP ones (their connections
        need them until the end of the drain); closed last."""
        services, self._services = self._services, []
        for service in services:
            try:
                service.close()
            except Exception:  # noqa: BLE001 - the others must close too
                logger.exception("closing a listener service failed")
        for listener in self.listeners:
            listener.close()

    def _stop_accepting(self, loop: asyncio.AbstractEventLoop) -> None:
        """Stop accepting without closing the sockets (they may be shared)."""
        if isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop):
            for server in self._servers:
                for sock in server.sockets:
                    loop.remove_reader(sock.fileno())
        else:  # uvloop and others: closing is the only public way
            for server in self._servers:
                server.close()

    async def serve(self, timeout: float | None = None) -> None:
        """start → wait for stop → drain: the whole life of a worker."""
        await self.start()
        await self.wait_stopped()
        await self.drain(self.config.timeout_graceful_shutdown if timeout is None else timeout)
