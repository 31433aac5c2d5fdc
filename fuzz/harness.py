"""In-process driver for pounce's protocol layers, shared by the fuzzers.

Fuzzing needs tens of thousands of executions a second, so instead of real
sockets each input goes through :class:`HttpProtocol` (and, after an
upgrade, the WebSocket protocol) over :class:`FakeTransport`, on one event
loop kept for the whole run. That stand-in transport exists for fuzzing
only: every user-visible behaviour is tested over real sockets in tests/.

``drive(data, chunk)`` feeds ``data`` in pieces of ``chunk`` bytes (all at
once when 0), honouring ``pause_reading`` the way a real transport does,
then end-of-file, runs the loop until the app tasks finish, and checks the
invariants below. A broken invariant raises :class:`Finding`; anything else
raised is a crash too. Invariants:

1. no exception escapes the protocol callbacks, the app's tasks, or the
   event loop's exception handler;
2. nothing is logged at ERROR or above (the fuzz apps never fail on purpose);
3. everything written starts with an HTTP/1.1 status line, or, once the
   connection became HTTP/2 (prior knowledge), with the server's SETTINGS;
4. after the connection is lost no app task is left running and no timer
   of the connection is left armed (a leak in a long-running server).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pounce.core.config import ServerConfig
from pounce.core.transport.context import WorkerContext
from pounce.core.transport.http import HttpProtocol


class Finding(AssertionError):
    """An invariant broken by an input."""


class FakeTransport(asyncio.Transport):
    """Just enough of an asyncio transport for HttpProtocol and WebSocket."""

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self.loop = loop
        self.protocol = protocol
        self.out = bytearray()
        self.closing = False
        self.lost = False
        self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data: Any) -> None:
        if self.lost:
            raise Finding("write after connection_lost")
        if not self.closing:
            self.out += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self.loop.call_soon(self._lose)

    def abort(self) -> None:
        self.close()

    def _lose(self) -> None:
        self.lost = True
        self.protocol.connection_lost(None)

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_reading(self) -> bool:
        return not self.paused

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


class ErrorTrap(logging.Handler):
    """Collects ERROR records of the pounce and asyncio loggers."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage() + (f"\n{record.exc_text or ''}" if record.exc_info else ""))


async def fuzz_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body and answers; echoes WebSocket messages."""
    if scope["type"] == "websocket":
        message = await receive()
        if scope["path"] == "/deny":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    try:
        if scope["path"] == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": [],
                        "trailers": False})
            await send({"type": "http.response.body", "body": b"a" * 10, "more_body": True})
            await send({"type": "http.response.body", "body": b"b" * 10})
        else:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"%d" % size})
    except OSError:
        pass  # the client went away: ClientDisconnected is an OSError


class Driver:
    """One loop and one worker context for a whole fuzzing run."""

    def __init__(self, **overrides: Any) -> None:
        overrides.setdefault("logging_access_log", False)
        overrides.setdefault("lifespan", "off")
        self.config = ServerConfig.load(None, env={}, discover=False, **overrides)
        self.loop = asyncio.new_event_loop()
        self.loop_errors: list[str] = []
        self.loop.set_exception_handler(lambda loop, context: self.loop_errors.append(
            f"{context.get('message')}: {context.get('exception')!r}"))
        self.trap = ErrorTrap()
        for name in ("pounce", "asyncio"):
            logging.getLogger(name).addHandler(self.trap)
            logging.getLogger(name).propagate = False
        self.ctx = self.loop.run_until_complete(self._make_ctx())
        self.executions = 0

    async def _make_ctx(self) -> WorkerContext:
        ctx = WorkerContext(self.config, fuzz_app)
        ctx.loop = asyncio.get_running_loop()  # what Worker.start sets
        return ctx

    def drive(self, data: bytes, chunk: int = 0) -> bytes:
        """Feed ``data`` to one fresh connection; return what the server wrote."""
        self.executions += 1
        return self.loop.run_until_complete(self._drive(data, chunk))

    async def _drive(self, data: bytes, chunk: int) -> bytes:
        loop = self.loop
        self.loop_errors.clear()
        self.trap.records.clear()
        protocol = HttpProtocol(self.ctx)
        transport = FakeTransport(loop, protocol)
        protocol.connection_made(transport)
        before = set(asyncio.all_tasks(loop))
        step = chunk or len(data) or 1
        pos = 0
        while pos < len(data) and not transport.closing:
            spins = 0
            while transport.paused and not transport.closing and spins < 50:
                await asyncio.sleep(0)
                spins += 1
            if transport.paused:
                break  # the app stopped reading: a real client would wait here
            transport.protocol.data_received(data[pos:pos + step])
            pos += step
            await asyncio.sleep(0)
        if not transport.closing:
            if not transport.protocol.eof_received():
                transport.close()
        for _ in range(200):
            pending = [t for t in asyncio.all_tasks(loop) if t not in before and not t.done()]
            if not pending and transport.lost:
                break
            await asyncio.sleep(0)
        if not transport.lost:
            # Half-closed connection still open (e.g. an app not reading):
            # the peer resets it, as a real one eventually would.
            transport.close()
            for _ in range(200):
                pending = [t for t in asyncio.all_tasks(loop) if t not in before and not t.done()]
                if not pending and transport.lost:
                    break
                await asyncio.sleep(0)
        self.check(protocol, transport, before)
        return bytes(transport.out)

    def check(self, protocol: Any, transport: FakeTransport, before: set[Any]) -> None:
        loop = self.loop
        if self.loop_errors:
            raise Finding(f"event loop error: {self.loop_errors[0]}")
        if self.trap.records:
            raise Finding(f"logged an error: {self.trap.records[0]}")
        out = transport.out
        if out and not out.startswith(b"HTTP/1.1 ") and not _h2_settings_first(out):
            raise Finding(f"output does not start with a status line: {bytes(out[:60])!r}")
        left = [t for t in asyncio.all_tasks(loop) if t not in before and not t.done()]
        if left:
            raise Finding(f"app task still running after the connection was lost: {left[0]!r}")
        for handle in getattr(loop, "_scheduled", ()):
            if not handle.cancelled():
                owner = getattr(handle._callback, "__self__", None)
                if owner is protocol or owner is transport.protocol:
                    raise Finding(f"timer left armed after connection_lost: {handle!r}")
        # Drop cancelled timers so a long run does not accumulate them.
        scheduled = getattr(loop, "_scheduled", None)
        if scheduled is not None and len(scheduled) > 1000:
            scheduled[:] = [h for h in scheduled if not h.cancelled()]
            import heapq

            heapq.heapify(scheduled)
            loop._timer_cancelled_count = 0  # type: ignore[attr-defined]


def _h2_settings_first(out: bytearray) -> bool:
    """HTTP/2 output starts with a SETTINGS frame (type 4) on stream 0."""
    return len(out) >= 9 and out[3] == 4 and out[4] == 0 and out[5:9] == b"\0\0\0\0"


def split_input(data: bytes) -> tuple[bytes, int]:
    """First byte chooses the read size (0: everything at once)."""
    if not data:
        return b"", 0
    return data[1:], data[0] % 64 if data[0] < 192 else 0
