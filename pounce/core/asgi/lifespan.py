"""The ASGI lifespan protocol, run once around serving.

``auto`` treats an app that raises before taking ``lifespan.startup`` as one
that does not support lifespan, and goes on without it. ``on`` makes any
failure fatal; ``off`` skips lifespan entirely.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pounce.core.errors import LifespanError

logger = logging.getLogger("pounce.server")


class Lifespan:
    """Drives one app's lifespan from a task on the current event loop."""

    def __init__(self, app: Any, mode: str = "auto") -> None:
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = {}
        self.enabled = mode != "off"
        self._receive_queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._startup_done = asyncio.Event()
        self._shutdown_done = asyncio.Event()
        self._failed: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._unsupported = False

    async def startup(self) -> None:
        """Send ``lifespan.startup`` and wait for the answer.

        Raises :class:`LifespanError` with the app's message on failure.
        """
        if not self.enabled:
            return
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        self._task = asyncio.get_running_loop().create_task(self._main(scope))
        await self._receive_queue.put({"type": "lifespan.startup"})
        await self._startup_done.wait()
        if self._unsupported:
            self.enabled = False
            return
        if self._failed is not None:
            raise LifespanError(f"lifespan startup failed: {self._failed}")

    async def shutdown(self) -> None:
        if not self.enabled or self._task is None:
            return
        await self._receive_queue.put({"type": "lifespan.shutdown"})
        await self._shutdown_done.wait()
        if self._failed is not None:
            logger.error("lifespan shutdown failed: %s", self._failed)

    async def _main(self, scope: dict[str, Any]) -> None:
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:  # noqa: BLE001 - reported, not swallowed
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            if not self._startup_done.is_set() and self.mode == "auto":
                self._unsupported = True
                logger.info("app does not support lifespan (%s); continuing without it", _short(exc))
            else:
                self._failed = self._failed or _short(exc)
                if self.mode == "on" or self._startup_done.is_set():
                    logger.error("lifespan failed", exc_info=exc)
        finally:
            if not self._startup_done.is_set() and self._failed is None and not self._unsupported:
                # Returned without answering startup: treat as unsupported.
                self._unsupported = self.mode == "auto"
                if self.mode == "on":
                    self._failed = "the app returned without completing startup"
            self._startup_done.set()
            self._shutdown_done.set()

    async def _receive(self) -> dict[str, Any]:
        return await self._receive_queue.get()

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "lifespan.startup.complete":
            self._startup_done.set()
        elif kind == "lifespan.startup.failed":
            self._failed = str(message.get("message", "")) or "startup failed"
            self._startup_done.set()
        elif kind == "lifespan.shutdown.complete":
            self._shutdown_done.set()
        elif kind == "lifespan.shutdown.failed":
            self._failed = str(message.get("message", "")) or "shutdown failed"
            self._shutdown_done.set()
        else:
            raise RuntimeError(f"unexpected lifespan message {kind!r}")


def _short(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
