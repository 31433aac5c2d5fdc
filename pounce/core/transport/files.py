"""Sending a file to a transport: ``sendfile(2)`` where the kernel can, a
copy loop where it cannot (TLS, loops without ``loop.sendfile``).

Used by every protocol's ``send_file`` (``http.response.pathsend``) where
the response body is the file as is (HTTP/1.1 with Content-Length); the
worker counts what went each way (``WorkerContext.sendfile_bytes`` and
``copied_file_bytes``), which is also how the tests see that a file really
went through the kernel.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from pounce.core.transport.context import WorkerContext

__all__ = ["send_file"]

# Bytes read from the file per write in the copy loop.
CHUNK = 256 * 1024


async def send_file(loop: asyncio.AbstractEventLoop, transport: asyncio.Transport, file: BinaryIO,
                    offset: int, count: int, ctx: WorkerContext,
                    drain: Callable[[], Awaitable[None]]) -> None:
    """Write ``count`` bytes of ``file`` from ``offset`` to ``transport``.

    The kernel's ``sendfile`` first (asyncio pauses reading and waits for the
    write buffer to empty around it); where that is not available, reads in
    a thread (the event loop never waits for the disk) and writes with flow
    control, as any other body.
    """
    if transport.is_closing():
        raise ConnectionResetError("the client has disconnected")
    native = getattr(loop, "sendfile", None)  # (uvloop has none)
    if native is not None:
        file.seek(offset)
        try:
            await native(transport, file, offset, count, fallback=False)
        except (asyncio.SendfileNotAvailableError, NotImplementedError, RuntimeError):
            # Not for this transport (TLS: RuntimeError, before sending
            # anything); the file position says what went, if anything did.
            if transport.is_closing():
                raise ConnectionResetError("the client has disconnected") from None
            done = file.tell() - offset
            ctx.sendfile_bytes += done
            offset += done
            count -= done
        else:
            ctx.sendfile_bytes += count
            return
    left = count
    while left:
        data = await loop.run_in_executor(None, _pread, file, min(CHUNK, left), offset)
        if not data:
            raise OSError("the file shrank while it was being sent")
        if transport.is_closing():
            raise ConnectionResetError("the client has disconnected")
        transport.write(data)
        offset += len(data)
        left -= len(data)
        ctx.copied_file_bytes += len(data)
        await drain()


def _pread(file: BinaryIO, size: int, offset: int) -> bytes:
    return os.pread(file.fileno(), size, offset)
