"""Waiting for flow control on an HTTP/2 connection: the senders of the
:class:`~pounce.core.transport.http2.H2Protocol`.

A stream whose body is held back (by its window, the connection's, or a
client not reading the socket) waits in :meth:`H2FlowControl.drain` on a
future of its own, woken when the WINDOW_UPDATE that opens it has been read
(or the stream or connection ends); no polling, and one stream waiting
holds up no other. A window that stays shut for ``flow_control_timeout``
with nothing moving gives the stream up (RST_STREAM CANCEL).
``http.response.pathsend`` files go out through the same waits.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any, BinaryIO

from pounce.core.asgi.stream import ClientDisconnected, HttpStream
from pounce.core.protocol.http2 import ErrorCodes, H2Connection, StreamClosed

if TYPE_CHECKING:
    from pounce.core.protocol.http2_limits import H2Settings
    from pounce.core.transport.context import WorkerContext

__all__ = ["H2FlowControl"]

logger = logging.getLogger("pounce.worker")

# Bytes of a file (http.response.pathsend) read at once: a default window.
FILE_CHUNK = 65536


class H2FlowControl:
    """The waiting half of the connection; the attributes are the connection's."""

    ctx: WorkerContext
    conn: H2Connection
    settings: H2Settings
    loop: asyncio.AbstractEventLoop
    closed: bool
    write_paused: bool
    _waiters: dict[int, asyncio.Future[Any]]

    def _queue(self, data: bytes) -> None:
        raise NotImplementedError

    def _flush(self) -> None:
        raise NotImplementedError

    def _check_open(self, stream: HttpStream) -> None:
        raise NotImplementedError

    def _gone(self, stream: Any) -> None:
        raise NotImplementedError

    async def drain(self, stream: Any) -> None:
        """Wait while the stream's output is held by flow control (its window
        or the connection's, or a client not reading the socket); give up,
        resetting the stream, when nothing moves for ``flow_control_timeout``."""
        stream_id = stream.stream_id
        conn = self.conn
        timeout = self.settings.flow_control_timeout
        while not (self.closed or stream.disconnected) and (self.write_paused or conn.pending(stream_id)):
            before = conn.pending(stream_id)
            waiter = self._waiters[stream_id] = self.loop.create_future()
            timer = self.loop.call_later(timeout, _time_out, waiter) if timeout > 0 else None
            try:
                timed_out = await waiter
            finally:
                self._waiters.pop(stream_id, None)
                if timer is not None:
                    timer.cancel()
            if timed_out and conn.pending(stream_id) >= before and not self.closed:
                logger.debug("HTTP/2 stream %d of %s: no flow-control progress in %.1f s, reset",
                             stream_id, self.client, timeout)
                conn.reset(stream_id, ErrorCodes.CANCEL)
                self._queue(conn.data_to_send())
                self._flush()
                stream.on_disconnect()
                return

    async def send_file(self, stream: HttpStream, status: int, headers: list[tuple[bytes, bytes]],
                        file: BinaryIO, offset: int, count: int) -> None:
        """``http.response.pathsend`` over HTTP/2: the file goes out in DATA
        frames, read in a thread a window's worth at a time (HTTP/2 framing
        and TLS leave nothing for the kernel's sendfile), flow-controlled
        like any body."""
        self._check_open(stream)
        conn = self.conn
        stream_id = stream.stream_id
        bodiless = stream.is_head or status in (204, 304)
        try:
            conn.response(stream_id, status, headers, b"", bool(count) and not bodiless)
        except StreamClosed:
            self._gone(stream)
        self._queue(conn.data_to_send())
        if bodiless or not count:
            return
        fd = file.fileno()
        position, left = offset, count
        while left > 0:
            data = await self.loop.run_in_executor(None, os.pread, fd, min(FILE_CHUNK, left), position)
            if not data:
                raise RuntimeError("http.response.pathsend: the file got shorter while being sent")
            if self.closed or stream.disconnected or stream_id not in conn.streams:
                stream.on_disconnect()
                raise ClientDisconnected("the client has disconnected")
            position += len(data)
            left -= len(data)
            try:
                conn.body(stream_id, data, left > 0)
            except StreamClosed:
                self._gone(stream)
            self._queue(conn.data_to_send())
            self.ctx.copied_file_bytes += len(data)
            if left and (self.write_paused or conn.pending(stream_id)):
                await self.drain(stream)

    def _wake(self, stream_id: int) -> None:
        waiter = self._waiters.get(stream_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(False)

    def _wake_writers(self) -> None:
        """Wake the senders whose output has gone out (or whose stream ended)."""
        conn = self.conn
        paused = self.write_paused
        for stream_id, waiter in list(self._waiters.items()):
            if not waiter.done() and (self.closed or conn.closed or not paused and not conn.pending(stream_id)
                                      or stream_id not in conn.streams):
                waiter.set_result(False)


def _time_out(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(True)
