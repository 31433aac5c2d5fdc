"""Server — orchestrates the lifecycle and emits the hooks.

``CONFIG → DETECT → BIND → LIFESPAN → SERVE → SHUTDOWN``. Each step is one
hook call (or a few) and one lifecycle event. What happens *inside* a step is
up to plugins: the core's defaults bind host/port and run one worker; the
supervisor plugin takes over SERVE when there are several workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from pounce._version import __version__
from pounce.core.boot import WorkerLifespan
from pounce.core.config import ServerConfig
from pounce.core.errors import AppLoadError, PluginError, PounceError
from pounce.core.lifecycle import (
    ConfigLoaded,
    LifecycleCollector,
    LifecycleEvent,
    ServerStopped,
    ShutdownStarted,
    SocketsBound,
    State,
    WorkerModeDetected,
)
from pounce.core.plugins import PounceManager, build_plugin_manager, culprit_error
from pounce.core.transport.listeners import Listener, take_inherited
from pounce.core.transport.sockets import close_sockets, describe

logger = logging.getLogger("pounce.server")

Waker = Callable[[bool], None]


class Server:
    """Top-level server: creates the sockets, runs lifespan, starts the
    workers (through ``pounce_serve``) and handles shutdown."""

    def __init__(
        self,
        config: ServerConfig,
        app: Any,
        *,
        app_path: str | None = None,
        lifecycle_collector: LifecycleCollector | None = None,
        plugins: Iterable[object] = (),
    ) -> None:
        plugin_section = config.section("plugins")
        self.plugins: PounceManager = build_plugin_manager(
            enable=plugin_section.get("enable", ()),
            disable=plugin_section.get("disable", ()),
            autoload=bool(plugin_section.get("autoload", False)),
            extra=plugins,
        )
        self.config = config.with_defaults(self.plugins.registry)
        self._app = app
        self.app_path = app_path or self.config.get("server", "app")
        self.lifecycle_collector = lifecycle_collector
        self.state = State.CREATED
        self.worker_mode = "process"
        self.workers = 1
        self.tls_context: ssl.SSLContext | None = None
        self.sockets: list[socket.socket] = []
        # Plugins' listeners besides the TCP sockets (pounce_bind_listeners).
        self.listeners: list[Listener] = []
        self.lifespan_state: dict[str, Any] = {}
        self.shutdown_reason: str | None = None
        self.exit_code = 0
        self._lock = threading.Lock()
        self._wakers: list[Waker] = []
        self._forced = False
        self._owned_paths: list[str] = []

    # -- public API --------------------------------------------------------

    @property
    def app(self) -> Any:
        """The ASGI app; imported from ``app_path`` on first use when the
        Server was given none, so that a process that only supervises
        (process workers, the reload watcher) never imports it."""
        if self._app is None:
            from pounce.core.asgi.appload import load_app

            if not self.app_path:
                raise AppLoadError('no app: give an ASGI callable or "module:attribute"')
            config = self.config
            self._app = load_app(self.app_path, factory=config.factory, app_dir=config.app_dir)
        return self._app

    def run(self) -> None:
        """Start the server and block until it has stopped.

        Returns at once when :meth:`shutdown` was called before. Errors are
        raised as :class:`pounce.PounceError` subclasses carrying an exit code.
        """
        if self.shutdown_reason is not None:
            self.state = State.STOPPED
            self.emit(ServerStopped(exit_code=0))
            return
        manager = self.plugins
        config = self.config
        try:
            self.state = State.CONFIG
            # Plugins registered through server.plugins.register() after
            # __init__ may have declared options: give them their defaults.
            config = self.config = self.config.with_defaults(manager.registry)
            # pounce_configure is historic: plugins registered after this
            # point still see the config when they register.
            self._configure()
            self.emit(ConfigLoaded(plugins=tuple(manager.active_names())))

            self.state = State.DETECT
            self.workers = resolve_workers(config.workers)
            self.worker_mode = manager.call("pounce_worker_mode", config=config) or "process"
            self.emit(WorkerModeDetected(mode=self.worker_mode, workers=self.workers))
            self.tls_context = manager.call("pounce_tls_context", config=config)

            self.state = State.BIND
            self.sockets = list(manager.call("pounce_bind", config=config) or [])
            self._owned_paths = owned_unix_paths(self.sockets, config.uds)
            manager.call("pounce_sockets_bound", config=config, sockets=self.sockets)
            inherited = take_inherited()
            self.listeners = inherited + manager.bind_listeners(config, self.sockets, inherited)
            self.emit(SocketsBound(addresses=tuple(self.addresses())))
            self._print_banner()

            if self.shutdown_reason is None:
                self.state = State.SERVE
                manager.call("pounce_serve", server=self, sockets=self.sockets)
        except BaseException:
            self.exit_code = 1
            raise
        finally:
            self.state = State.SHUTDOWN
            self._close_sockets(self.sockets)
            for listener in self.listeners:
                try:
                    listener.close()
                except Exception:  # noqa: BLE001 - the rest must close too
                    logger.exception("closing %r failed", listener)
            for path in self._owned_paths:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            try:
                manager.call("pounce_unconfigure", config=config)
            finally:
                self.state = State.STOPPED
                self.emit(ServerStopped(exit_code=self.exit_code))

    def shutdown(self, reason: str = "api") -> None:
        """Request graceful shutdown. Thread-safe and idempotent.

        Safe before :meth:`run` (which then returns at once). ``reason`` is
        passed to ``pounce_shutdown``: ``signal``, ``api``, ``reload``, ``error``.
        """
        with self._lock:
            if self.shutdown_reason is not None:
                return
            self.shutdown_reason = reason
            wakers = list(self._wakers)
        self.emit(ShutdownStarted(reason=reason))
        try:
            self.plugins.call("pounce_shutdown", server=self, reason=reason)
        except PluginError as exc:
            logger.error("%s", exc)
        for waker in wakers:
            waker(False)

    def force_exit(self) -> None:
        """Stop now: abort connections without waiting for them."""
        with self._lock:
            self._forced = True
            wakers = list(self._wakers)
        for waker in wakers:
            waker(True)

    # -- for serve implementations ------------------------------------------

    def emit(self, event: LifecycleEvent) -> None:
        if self.lifecycle_collector is not None:
            self.lifecycle_collector.record(event)

    def add_waker(self, waker: Waker) -> None:
        """Register ``waker(force)``, called on shutdown from any thread.

        Called at once when shutdown was already requested.
        """
        with self._lock:
            self._wakers.append(waker)
            pending = self.shutdown_reason is not None
            forced = self._forced
        if pending:
            waker(forced)

    def remove_waker(self, waker: Waker) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._wakers.remove(waker)

    def install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        """SIGINT/SIGTERM: first one drains, a second one forces.

        Only in the main thread (an embedding app may run us elsewhere).
        """
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum: int) -> None:
            if self.shutdown_reason is None:
                logger.info("received %s: shutting down gracefully", signal.Signals(signum).name)
                self.shutdown("signal")
            else:
                logger.warning("received %s again: forcing exit", signal.Signals(signum).name)
                self.force_exit()

        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, on_signal, signum)

    def lifespan_runner(self) -> WorkerLifespan:
        """A lifespan for the app that reports to this server (lifecycle
        events, ``state``, ``lifespan_state``); run by the worker that owns it."""
        return _ServerLifespan(self)

    async def lifespan_startup(self, app: Any) -> WorkerLifespan:
        """Run the app's lifespan startup (LIFESPAN step) on the running loop."""
        lifespan = self.lifespan_runner()
        await lifespan.startup(app)
        return lifespan

    async def lifespan_shutdown(self, lifespan: WorkerLifespan) -> None:
        await lifespan.shutdown()

    def addresses(self) -> list[str]:
        scheme = "https" if self.tls_context is not None else "http"
        return [describe(sock, scheme) for sock in self.sockets]

    # -- internals -----------------------------------------------------------

    def _configure(self) -> None:
        try:
            self.plugins.hook.pounce_configure.call_historic(kwargs={"config": self.config})
        except PounceError:
            raise
        except Exception as exc:
            raise culprit_error(self.plugins, exc, "pounce_configure") from exc

    def _print_banner(self) -> None:
        info = {
            "version": __version__,
            "addresses": self.addresses(),
            "listeners": [listener.label for listener in self.listeners],
            "workers": self.workers,
            "worker_mode": self.worker_mode,
            "plugins": self.plugins.active_names(),
        }
        lines: list[str] = []
        for result in self.plugins.call("pounce_banner", config=self.config, info=info) or []:
            if isinstance(result, str):
                lines.append(result)
            elif result:
                lines.extend(str(line) for line in result)
        ensure_log_output()
        for line in lines:
            logger.info("%s", line)

    @staticmethod
    def _close_sockets(sockets: list[socket.socket]) -> None:
        """Close all sockets once each, even when workers share an fd."""
        close_sockets(sockets)


def owned_unix_paths(sockets: list[socket.socket], uds: str | None) -> list[str]:
    """Unix socket files this server created (to remove at exit). asyncio
    closes listening sockets itself, so the paths are noted at bind time."""
    if not uds:
        return []
    paths = []
    for sock in sockets:
        with contextlib.suppress(OSError):
            name = sock.getsockname()
            if sock.family == socket.AF_UNIX and isinstance(name, str) and name == uds:
                paths.append(name)
    return paths


def resolve_workers(value: int | str) -> int:
    if value == "auto":
        return os.cpu_count() or 1
    return int(value)


def ensure_log_output() -> None:
    """Without the logging plugin nothing configures logging; make sure the
    banner and errors still reach stderr."""
    root = logging.getLogger()
    pounce_logger = logging.getLogger("pounce")
    if not root.handlers and not pounce_logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        pounce_logger.addHandler(handler)
        if pounce_logger.level == logging.NOTSET:
            pounce_logger.setLevel(logging.INFO)


class _ServerLifespan(WorkerLifespan):
    """The lifespan of the app a Server serves itself (one worker, or thread
    workers sharing it): it moves the server through LIFESPAN and SERVE."""

    def __init__(self, server: Server) -> None:
        super().__init__(server.plugins, server.config, emit=server.emit)
        self.server = server

    async def startup(self, app: Any) -> dict[str, Any]:
        server = self.server
        server.state = State.LIFESPAN
        state = await super().startup(app)
        server.lifespan_state = state
        server.state = State.SERVE
        return state
