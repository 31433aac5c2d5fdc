"""Starting a worker: the one sequence every kind of worker runs.

The single worker (the core's ``pounce_serve``), thread workers, process
workers and subinterpreter workers (the supervisor plugin) and the reload
plugin's child all serve through :func:`serve_worker`: wrap the app
(``pounce_wrap_app``), run its lifespan here or share one that runs
elsewhere, collect the request observers, build the
:class:`~pounce.core.transport.worker.WorkerContext` from the config once,
start accepting, report readiness, beat, wait for the stop, drain, and run the
lifespan shutdown. What differs between them is passed in: who runs the
lifespan, how readiness and heartbeats are reported, what to do at
``max_requests``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from pounce.core.asgi.lifespan import Lifespan
from pounce.core.lifecycle import LifespanStarted, LifespanStopped
from pounce.core.transport.context import WorkerContext
from pounce.core.transport.worker import Worker

if TYPE_CHECKING:
    import socket
    import ssl

    from pounce.core.config import ServerConfig
    from pounce.core.plugins import PounceManager
    from pounce.core.transport.listeners import Listener

__all__ = ["WorkerLifespan", "run_loop", "serve_worker"]


class WorkerLifespan:
    """The app's lifespan run by this worker, with the lifespan hooks around
    it; ``emit`` receives the lifecycle events (the Server's collector)."""

    def __init__(self, manager: PounceManager, config: ServerConfig,
                 emit: Callable[[Any], None] | None = None) -> None:
        self.manager = manager
        self.config = config
        self.emit = emit
        self.lifespan: Lifespan | None = None

    async def startup(self, app: Any) -> dict[str, Any]:
        lifespan = self.lifespan = Lifespan(app, self.config.lifespan)
        await lifespan.startup()
        if self.emit is not None:
            self.emit(LifespanStarted(enabled=lifespan.enabled))
        self.manager.call("pounce_lifespan_startup", config=self.config, state=lifespan.state)
        return lifespan.state

    async def shutdown(self) -> None:
        lifespan = self.lifespan
        if lifespan is None:
            return
        try:
            self.manager.call("pounce_lifespan_shutdown", config=self.config, state=lifespan.state)
        finally:
            await lifespan.shutdown()
            if self.emit is not None:
                self.emit(LifespanStopped(enabled=lifespan.enabled))


async def serve_worker(
    manager: PounceManager,
    config: ServerConfig,
    app: Any,
    sockets: list[socket.socket],
    *,
    tls: ssl.SSLContext | None,
    worker_id: int = 0,
    lifespan: WorkerLifespan | None = None,
    state: dict[str, Any] | None = None,
    max_requests: int | None = None,
    on_request_limit: Callable[[], None] | None = None,
    on_ready: Callable[[Worker], None] | None = None,
    heartbeat: tuple[float, Callable[[Worker], None]] | None = None,
    listeners: list[Listener] | None = None,
) -> None:
    """Serve ``sockets`` until the worker is stopped, then drain.

    ``lifespan`` runs the app's lifespan in this worker; without it the
    worker shares ``state``, a lifespan state that runs elsewhere (threads).
    ``on_ready(worker)`` runs once the worker accepts (where stop requests get
    wired to ``worker.stop``); ``heartbeat = (seconds, beat)`` calls
    ``beat(worker)`` that often while it serves. ``listeners`` are the
    plugins' extra listeners (``pounce_bind_listeners``), served by them in
    this worker (``pounce_serve_listeners``); the worker owns them.
    """
    app = manager.wrap_app(config, app)
    if lifespan is not None:
        state = await lifespan.startup(app)
    try:
        ctx = WorkerContext(
            config, app, observers=manager.request_observers(config), tls=tls, worker_id=worker_id,
            state=state, max_requests=max_requests, on_request_limit=on_request_limit,
        )
        worker = Worker(
            ctx, sockets,
            started=lambda w: manager.call("pounce_worker_started", worker=w),
            wrap_protocol=lambda factory: manager.wrap_protocol(config, factory),
            draining=manager.drain_delay,
            listeners=listeners or [],
            serve_listeners=manager.serve_listeners,
        )
        await worker.start()
        if on_ready is not None:
            on_ready(worker)
        beat_handle: list[asyncio.TimerHandle] = []
        if heartbeat is not None:
            interval, beat = heartbeat
            loop = asyncio.get_running_loop()

            def tick() -> None:
                beat(worker)
                beat_handle[0] = loop.call_later(interval, tick)

            beat_handle.append(loop.call_later(interval, tick))
        try:
            await worker.wait_stopped()
            await worker.drain(config.timeout_graceful_shutdown)
        finally:
            if beat_handle:
                beat_handle[0].cancel()
    finally:
        if lifespan is not None:
            await lifespan.shutdown()


def run_loop(main: Coroutine[Any, Any, Any], loop_name: str = "auto") -> Any:
    """Run a coroutine on a new event loop of the configured kind."""
    if loop_name in ("auto", "uvloop"):
        try:
            import uvloop  # type: ignore[import-not-found]
        except ImportError:
            if loop_name == "uvloop":
                from pounce.core.errors import ConfigError

                raise ConfigError("[server] loop: expected uvloop to be installed, found it missing") from None
        else:
            return uvloop.run(main)
    return asyncio.run(main)
