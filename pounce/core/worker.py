"""One worker: an event loop that accepts on the listening sockets and runs
connections until told to stop.

Everything a connection needs that does not change per request is computed
here once per worker and kept on :class:`WorkerContext`: the wrapped app, the
request observers, header bytes, proxy trust, timeouts. Protocols read it; no
pluggy hook is called per request or per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import errno
import logging
import os
import socket
import ssl
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pounce.core.h1fast import header_preamble
from pounce.core.proxy import ProxyTrust

if TYPE_CHECKING:
    from pounce.core.config import ServerConfig
    from pounce.core.plugins import PounceManager

logger = logging.getLogger("pounce.worker")

# How long connections accepted just before a drain get to send their request.
ACCEPT_GRACE = 0.25

# Bytes read from a socket at once (asyncio's own default read size).
READ_BUFFER_SIZE = 256 * 1024

Observer = Callable[[dict[str, Any], int, int, float], None]


class WorkerContext:
    """Per-worker constants and shared state for every connection."""

    def __init__(
        self,
        config: ServerConfig,
        app: Any,
        *,
        observers: tuple[Observer, ...] = (),
        tls: ssl.SSLContext | None = None,
        worker_id: int = 0,
        state: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.app = app
        self.observers = observers
        self.tls = tls
        self.worker_id = worker_id
        self.lifespan_state: dict[str, Any] = state if state is not None else {}
        self.connections: set[Any] = set()
        self.requests_served = 0
        self.shutting_down = False
        self.on_request_limit: Callable[[], None] | None = None
        # Every connection of this worker reads into this one buffer and
        # copies out what arrived (see ``HttpProtocol.get_buffer``). Reading
        # with ``recv(256 KiB)`` instead allocates 256 KiB per read and shrinks
        # it to the bytes received; the shrunk leftovers fragment glibc's
        # heap, which the long soak saw as RSS creeping by ~0.2 bytes per
        # request with Python's own allocations flat. One buffer per worker
        # (never shared between threads) is safe because each read is copied
        # before any other read on the same loop can happen. A memoryview,
        # not the bytearray: asyncio's TLS layer fills it in slices, and a
        # bytearray slice would be a copy.
        self.read_buffer = memoryview(bytearray(READ_BUFFER_SIZE))

        self.root_path: str = config.root_path
        self.keep_alive_timeout: float = config.timeout_keep_alive
        self.header_timeout: float = config.http.timeout_request_header
        self.request_timeout: float = config.http.timeout_request
        self.max_incomplete_event_size: int = config.http.max_incomplete_event_size
        self.limit_concurrency: int = config.limit_concurrency
        self.max_requests: int = config.max_requests
        self.proxy = ProxyTrust(config.forwarded_allow_ips) if config.proxy_headers else None
        self.websocket = config.section("websocket")
        # ``--ws none``: upgrade requests reach the app as plain HTTP.
        self.websocket_enabled = config.websocket.implementation != "none"

        extra: list[tuple[bytes, bytes]] = []
        for item in config.headers:
            name, _, value = item.partition(":")
            extra.append((name.strip().lower().encode("latin-1"), value.strip().encode("latin-1")))
        self.server_header = config.server_header
        self.date_header = config.date_header
        self._extra_headers = extra
        self.default_headers: list[tuple[bytes, bytes]] = []
        # The same, rendered once a second for the HTTP fast path; None
        # when they cannot be (see h1fast.header_preamble).
        self.default_head: bytes | None = None
        self.date_value = b""
        self.update_date()

    def update_date(self) -> None:
        """Refresh the cached ``Date`` value; called once a second."""
        self.date_value = email.utils.formatdate(time.time(), usegmt=True).encode("ascii")
        headers: list[tuple[bytes, bytes]] = []
        if self.server_header:
            headers.append((b"server", b"pounce"))
        if self.date_header:
            headers.append((b"date", self.date_value))
        headers.extend(self._extra_headers)
        self.default_headers = headers
        self.default_head = header_preamble(headers)

    def count_request(self) -> None:
        self.requests_served += 1
        if self.max_requests and self.requests_served == self.max_requests and self.on_request_limit:
            self.on_request_limit()


def collect_observers(manager: PounceManager, config: ServerConfig) -> tuple[Observer, ...]:
    """Ask plugins once per worker for their per-request callables."""
    results = manager.call("pounce_request_observer", config=config) or []
    return tuple(r for r in results if callable(r))


def _chain(manager: PounceManager, hook: str, config: ServerConfig, key: str, value: Any) -> Any:
    """Let each implementation of a wrapping hook wrap the previous result.

    pluggy lists implementations trylast first, so a ``tryfirst`` wrapper is
    applied last and ends up outermost: it sees each request (or connection)
    first, like the first middleware in a stack.
    """
    from pounce.core.errors import PluginError
    from pounce.core.plugins import culprit_error

    for impl in getattr(manager.hook, hook).get_hookimpls():
        args = {"config": config, key: value}
        try:
            wrapped = impl.function(**{a: args[a] for a in impl.argnames})
        except Exception as exc:
            raise culprit_error(manager, exc, hook) from exc
        if wrapped is not None:
            if not callable(wrapped):
                problem = TypeError(f"expected a callable, found {wrapped!r}")
                raise PluginError(manager.get_name(impl.plugin) or "?", hook, problem)
            value = wrapped
    return value


def wrap_app(manager: PounceManager, config: ServerConfig, app: Any) -> Any:
    """The app behind every ``pounce_wrap_app`` wrapper, built once per worker."""
    return _chain(manager, "pounce_wrap_app", config, "app", app)


def wrap_protocol(manager: PounceManager, config: ServerConfig, factory: Callable[[], Any]) -> Any:
    """The protocol factory behind every ``pounce_wrap_protocol`` wrapper.

    With no wrapper the core's own factory comes back unchanged, so the
    connection-level extension point costs nothing per connection.
    """
    return _chain(manager, "pounce_wrap_protocol", config, "factory", factory)


_ALLOCATOR_TUNED = False


def tune_allocator() -> None:
    """Keep large short-lived buffers on the heap (glibc only; once per process).

    Request bodies arrive in reads of up to 256 KiB and apps send chunks of
    that order; glibc's default 128 KiB mmap threshold makes each such
    buffer cost an mmap, page faults and an munmap. Raising the threshold
    (and the trim threshold with it, so the heap top is not handed back
    after every request) still measures about 1.5x on 64 KiB POSTs with
    reads going through the worker's read buffer (31,706 and 33,395 req/s
    against 22,484 and 21,056 without, alternating runs). The cost is at
    most a few MiB of free heap kept per process.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED or not sys.platform.startswith("linux"):
        return
    _ALLOCATOR_TUNED = True
    try:
        import ctypes

        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 1 << 20)
    mallopt(m_trim_threshold, 8 << 20)


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """TCP_NODELAY on every TCP connection, whatever made its socket."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# -- out of file descriptors ---------------------------------------------------
#
# When accept() fails with EMFILE/ENFILE, asyncio's selector loop logs it and
# schedules a retry, but does not leave its accept loop: one readable event
# makes up to ``backlog`` failed accepts, each logging a traceback and
# arming another retry timer, so the worker floods its log (tens of
# thousands of lines a second) and spins until descriptors come back. The
# listening sockets are therefore given an accept() that sheds instead: it
# keeps one spare descriptor, and when out of them, frees the spare, accepts
# the waiting connection, answers it 503 (plain HTTP) or just closes it
# (TLS), and takes the spare back. The queue drains, clients get an answer
# instead of a hang, the log gets one line every few seconds, and accepting
# resumes by itself as soon as descriptors free up. (libuv and nginx do the
# same; uvloop does not use this accept() at all.)

_SHED_503 = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
             b"content-length: 19\r\nconnection: close\r\n\r\nService Unavailable")
_SHED_LOG_EVERY = 5.0


class _Shedder:
    """The spare descriptor and counters of one listening socket."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer
        self.lock = threading.Lock()  # thread workers share a listening socket
        self.spare = self._open_spare()
        self.shed = 0
        self.last_log = 0.0

    @staticmethod
    def _open_spare() -> int:
        try:
            return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return -1

    def shed_one(self, sock: socket.socket, exc: OSError) -> None:
        with self.lock:
            if self.spare >= 0:
                os.close(self.spare)
                self.spare = -1
                try:
                    conn, _ = socket.socket.accept(sock)
                except OSError:
                    conn = None
                if conn is not None:
                    with contextlib.suppress(OSError):
                        conn.setblocking(False)
                        if self.answer:
                            conn.send(self.answer)
                    conn.close()
                    self.shed += 1
                self.spare = self._open_spare()
            now = time.monotonic()
            if now - self.last_log >= _SHED_LOG_EVERY:
                self.last_log = now
                logger.error("out of file descriptors (%s): shedding new connections "
                             "(%d shed so far); accepting resumes when descriptors are free",
                             exc.strerror, self.shed)

    def close(self) -> None:
        with self.lock:
            if self.spare >= 0:
                os.close(self.spare)
                self.spare = -1


def guard_accept(sock: socket.socket, tls: bool) -> None:
    """Give a listening socket the shedding accept() described above (once)."""
    if type(sock) is not socket.socket:
        return  # already guarded, or a socket type we do not know
    shedder = _Shedder(None if tls else _SHED_503)

    class SheddingSocket(socket.socket):
        __slots__ = ()

        def accept(self) -> tuple[socket.socket, Any]:
            try:
                return super().accept()
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE):
                    raise
                shedder.shed_one(self, exc)
                # "Nothing more to accept now": asyncio leaves its accept loop
                # quietly and tries again on the next readable event.
                raise BlockingIOError(errno.EAGAIN, "shed a connection: out of descriptors") from None

    sock.__class__ = SheddingSocket
    weakref.finalize(sock, shedder.close)


class Worker:
    """Serves connections from ``sockets`` on the running loop until stopped.

    Used as is by the single-worker fast path and by the supervisor's workers
    (threads or processes); plugins see it in ``pounce_worker_started``.
    """

    def __init__(
        self,
        ctx: WorkerContext,
        sockets: list[socket.socket],
        *,
        manager: PounceManager | None = None,
    ) -> None:
        self.ctx = ctx
        self.config = ctx.config
        self.worker_id = ctx.worker_id
        self.sockets = sockets
        self.manager = manager
        self.loop: asyncio.AbstractEventLoop | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._stop: asyncio.Event | None = None
        self._force = False
        self._date_timer: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        """Begin accepting on every socket."""
        from pounce.core.http11 import HttpProtocol

        tune_allocator()
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        ctx = self.ctx
        if self.manager is not None:
            self.manager.call("pounce_worker_started", worker=self)

        def factory() -> HttpProtocol:
            return HttpProtocol(ctx)

        if self.manager is not None:
            factory = wrap_protocol(self.manager, self.config, factory)

        for sock in self.sockets:
            guard_accept(sock, ctx.tls is not None)
            server = await self.loop.create_server(
                factory, sock=sock, ssl=ctx.tls, backlog=self.config.backlog,
                ssl_handshake_timeout=ctx.header_timeout if ctx.tls else None,
            )
            self._servers.append(server)
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

        Before all that, plugins hear that the drain begins
        (``pounce_worker_draining``) and may ask the worker to go on
        accepting for a while (``[health] shutdown_delay``); that wait counts
        within ``timeout``.
        """
        ctx = self.ctx
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        deadline = started + timeout
        keep_accepting_until = started + min(self._announce_drain(), timeout)
        while time.monotonic() < keep_accepting_until and not self._force:
            await asyncio.sleep(min(0.05, max(0.0, keep_accepting_until - time.monotonic())))
        stopped_at = time.monotonic()
        self._stop_accepting(loop)
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
        while ctx.connections and time.monotonic() < deadline and not self._force:
            await asyncio.sleep(0.05)
        for conn in list(ctx.connections):
            conn.abort()
        if self._date_timer is not None:
            self._date_timer.cancel()
        # Give cancelled connection tasks a moment to unwind.
        await asyncio.sleep(0)

    def _announce_drain(self) -> float:
        """Call ``pounce_worker_draining`` once; the longest wait asked for.

        A plugin that raises or answers nonsense is logged and ignored: the
        drain itself must go on whatever a plugin does.
        """
        if self.manager is None:
            return 0.0
        from pounce.core.errors import PounceError

        try:
            answers = self.manager.call("pounce_worker_draining", worker=self) or []
        except PounceError as exc:
            logger.error("%s", exc)
            return 0.0
        delays = [0.0]
        for answer in answers:
            if isinstance(answer, (int, float)) and not isinstance(answer, bool) and answer == answer:
                delays.append(max(0.0, float(answer)))
            else:
                logger.error("pounce_worker_draining: expected a number of seconds or None, found %r", answer)
        return max(delays)

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
