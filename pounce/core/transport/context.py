"""What every connection of a worker shares, computed once per worker.

:class:`WorkerContext` extends the app side's
:class:`~pounce.core.asgi.context.AppContext` (the wrapped app, the request
observers, proxy trust, lifespan state) with what connections need: header
bytes, timeouts, limits, the read buffer, the set of open connections. It is
built from the config once, when a worker starts; nothing here is looked up
per request.
"""

from __future__ import annotations

import asyncio
import email.utils
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pounce.core.asgi.context import AppContext, Observer
from pounce.core.protocol.http2_limits import H2Settings
from pounce.core.protocol.responses import DefaultHeaders
from pounce.core.transport.turn import TurnWriter

if TYPE_CHECKING:
    from pounce.core.config import ServerConfig

__all__ = ["READ_BUFFER_SIZE", "WorkerContext"]

# Bytes read from a socket at once (asyncio's own default read size).
READ_BUFFER_SIZE = 256 * 1024


class WorkerContext(AppContext):
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
        max_requests: int | None = None,
        on_request_limit: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config, app, observers=observers, state=state, max_requests=max_requests,
                         on_request_limit=on_request_limit)
        self.tls = tls
        self.worker_id = worker_id
        self.connections: set[Any] = set()
        self.shutting_down = False
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
        # http.response.pathsend: bytes sent by the kernel's sendfile, and
        # bytes copied through the event loop (TLS, no sendfile).
        self.sendfile_bytes = 0
        self.copied_file_bytes = 0
        self.turn_writer: TurnWriter | None = None

        http = config.http
        self.keep_alive_timeout: float = config.timeout_keep_alive
        self.header_timeout: float = http.timeout_request_header
        self.max_head_size: int = http.max_incomplete_event_size
        self.fast_path: bool = http.fast_path
        self.limit_concurrency: int = config.limit_concurrency
        self.http2 = H2Settings.from_config(config, websocket=self.websocket.enabled)
        extra: list[tuple[bytes, bytes]] = []
        for item in config.headers:
            name, _, value = item.partition(":")
            extra.append((name.strip().lower().encode("latin-1"), value.strip().encode("latin-1")))
        self.default_headers = DefaultHeaders(server=config.server_header, date=config.date_header, extra=extra)
        self.update_date()

    def turn_writer_for(self, loop: asyncio.AbstractEventLoop) -> TurnWriter:
        """The worker's :class:`~.turn.TurnWriter` for ``loop`` (made on the
        first connection, again if the worker's loop is a new one)."""
        writer = self.turn_writer
        if writer is None or writer.loop is not loop:
            writer = self.turn_writer = TurnWriter(loop, self.connections, self.tasks_for(loop))
        return writer

    def update_date(self) -> None:
        """Refresh the cached ``Date`` value; called once a second."""
        self.default_headers.refresh(email.utils.formatdate(time.time(), usegmt=True).encode("ascii"))
