"""The plugin contract: every hook pounce calls, in lifecycle order.

This file is the one page a plugin author needs. Each hook is a stub whose
docstring says when it runs and what it may return. Implementations take any
subset of the named arguments (pluggy passes only what they ask for).

No hook here is called per request or per connection: per-request work is
collected once per worker (``pounce_request_observer``) into plain callables
that the hot path calls directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    import asyncio
    import socket
    import ssl

    from pounce.core.config import ServerConfig
    from pounce.core.options import OptionRegistry
    from pounce.core.transport.listeners import Listener

PROJECT = "pounce"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Server(Protocol):
    """The :class:`pounce.Server` as the hooks that receive it see it: what a
    plugin that serves (``pounce_serve``) or stops (``pounce_shutdown``) may
    use. (Described here rather than imported, so that this contract does
    not depend on the server that implements it.)"""

    config: ServerConfig
    plugins: pluggy.PluginManager  # a PounceManager
    app: Any  # the ASGI app, imported on first use
    app_path: str | None
    workers: int
    worker_mode: str
    sockets: list[socket.socket]
    listeners: list[Listener]  # plugins' listeners besides TCP (pounce_bind_listeners)
    tls_context: ssl.SSLContext | None
    lifespan_state: dict[str, Any]
    exit_code: int

    def shutdown(self, reason: str = "api") -> None:
        """Start a graceful shutdown (thread-safe, idempotent)."""

    def force_exit(self) -> None:
        """Stop now, aborting connections."""

    def add_waker(self, waker: Callable[[bool], None]) -> None:
        """Have ``waker(force)`` called, from any thread, on shutdown."""

    def remove_waker(self, waker: Callable[[bool], None]) -> None: ...

    def emit(self, event: Any) -> None:
        """Record a lifecycle event (a frozen dataclass)."""

    def install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        """SIGINT/SIGTERM: the first drains, a second forces."""

    async def lifespan_startup(self, app: Any) -> Any:
        """Run the app's lifespan startup here; returns what to hand to
        :meth:`lifespan_shutdown`."""

    async def lifespan_shutdown(self, lifespan: Any) -> None: ...


# -- CONFIG ---------------------------------------------------------------


@hookspec(historic=True)
def pounce_add_hookspecs(plugin_manager: pluggy.PluginManager) -> None:
    """Add hookspecs of your own so other plugins can implement them.

    Runs once per plugin, as soon as it is registered (historic), before options
    are collected. Call ``plugin_manager.add_hookspecs(module_or_class)``.
    """


@hookspec(historic=True)
def pounce_add_options(options: OptionRegistry) -> None:
    """Declare config options with ``options.add(section, key, ...)``.

    Every option, the core's included, is declared here; the CLI, TOML
    validation, ``--help`` and the configuration reference (docs/configuration/) are
    generated from the result.
    """


@hookspec(historic=True)
def pounce_configure(config: ServerConfig) -> None:
    """The config is final and frozen. Validate it; raise ``ConfigError``."""


@hookspec
def pounce_check_warnings(config: ServerConfig) -> str | list[str] | None:
    """Warnings that ``pounce --check`` prints for a valid but doubtful config
    (for example reload together with several process workers)."""


@hookspec
def pounce_check_info(config: ServerConfig) -> str | list[str] | None:
    """Lines that ``pounce --check`` prints about what the server would do
    beyond the config itself (for example the UDP listener the http3 plugin
    would bind), without binding or starting anything."""


# -- DETECT ---------------------------------------------------------------


@hookspec(firstresult=True)
def pounce_worker_mode(config: ServerConfig) -> str | None:
    """Return ``"thread"`` or ``"process"``; the first non-None answer wins.

    The core's default answers from ``[server] worker_mode``, and for ``auto``
    picks threads on free-threaded builds and processes otherwise.
    """


# -- TLS ------------------------------------------------------------------


@hookspec(firstresult=True)
def pounce_tls_context(config: ServerConfig) -> ssl.SSLContext | None:
    """Return the server-side ``ssl.SSLContext`` to wrap connections in, or None.

    Called once in the main process before binding, and again once in each
    worker process (contexts do not cross process boundaries).
    """


# -- BIND -----------------------------------------------------------------


@hookspec(firstresult=True)
def pounce_bind(config: ServerConfig) -> list[socket.socket] | None:
    """Return the listening sockets; the core's trylast default binds
    host/port, ``uds`` or ``fd``."""


@hookspec
def pounce_sockets_bound(config: ServerConfig, sockets: list[socket.socket]) -> None:
    """The sockets are listening (``getsockname()`` gives the real port)."""


@hookspec
def pounce_bind_listeners(config: ServerConfig, sockets: list[socket.socket],
                          inherited: list[Listener]) -> list[Listener] | Listener | None:
    """Bind listeners that are not TCP listening sockets, and return them.

    Runs in the main process right after ``pounce_bind`` (``sockets`` are the
    bound TCP sockets, with their real ports), before the banner and before
    any worker starts: a transport plugin binds here what it serves, such as
    the UDP socket of HTTP/3, so that privileged ports work and the banner
    (``info["listeners"]``) shows it. Return a
    :class:`~pounce.core.transport.listeners.Listener` (or a list of them)
    whose ``kind`` your ``pounce_serve_listeners`` recognises. Every worker
    gets every listener: the same objects for a single worker, duplicated
    descriptors for thread workers, inherited descriptors for worker
    processes (only ``kind``, ``label``, ``options`` and the sockets cross,
    so keep ``options`` plain JSON-able data). The server closes them at the
    end. ``inherited`` are listeners this server got from the pounce process
    that started it (the reload plugin's children get their parent's, which
    stay bound across reloads): when one of your kind is there, it is yours
    already, so bind nothing and return None.
    """


@hookspec
def pounce_serve_listeners(worker: Any, listeners: list[Listener]) -> Any:
    """Serve your listeners in this worker; return what serves them.

    Runs inside each worker (thread or process), on its loop, after
    ``pounce_worker_started`` and once the TCP sockets accept. Pick the
    listeners of your ``kind`` from ``listeners``, start serving them on
    ``worker.loop``, and return a
    :class:`~pounce.core.transport.listeners.ListenerService` (or a list of
    them, or None when none is yours). The worker calls its
    ``stop_accepting()`` when its drain begins and ``close()`` when it ends.
    Connections it accepts belong in ``worker.ctx.connections``, with
    ``shutdown()`` (called twice by the drain, as for HTTP/1.1: first "make
    the response in progress the last", then "close if idle") and
    ``abort()``, so ``limit_concurrency``, graceful shutdown and forced
    stops treat them as they treat TCP connections. Called once per worker,
    never per connection.
    """


# -- BANNER ---------------------------------------------------------------


@hookspec
def pounce_banner(config: ServerConfig, info: dict[str, Any]) -> list[str] | str | None:
    """Return lines for the startup banner.

    ``info`` holds ``version``, ``addresses``, ``listeners`` (the labels of
    the plugins' extra listeners), ``workers``, ``worker_mode`` and
    ``plugins`` (the active plugin names).
    """


# -- APP ------------------------------------------------------------------


@hookspec
def pounce_wrap_app(config: ServerConfig, app: Any) -> Any:
    """Return an ASGI app wrapping ``app``, or None to leave it alone.

    Each wrapper wraps the result of the previous one; ``tryfirst`` wrappers
    end up outermost (they see the request first), ``trylast`` innermost.
    Called once per worker; the wrapped app also receives lifespan scopes.
    """


# -- CONNECTION -----------------------------------------------------------


@hookspec
def pounce_wrap_protocol(config: ServerConfig, factory: Any) -> Any:
    """Return a protocol factory wrapping ``factory``, or None to leave it alone.

    ``factory`` is a zero-argument callable returning a fresh asyncio
    protocol for an accepted connection (the core's HTTP one, an
    ``asyncio.BufferedProtocol`` that also takes ``data_received``, or an
    inner plugin's wrapper). The returned callable is what the event loop
    calls per connection. Its protocol sees the connection first (inside TLS:
    with ``[tls]`` it gets decrypted bytes) and then hands the transport on
    with ``transport.set_protocol(inner)`` and ``inner.connection_made(...)``,
    passing the transport itself or a delegating one whose ``get_extra_info``
    answers differently (``peername`` for the PROXY protocol).
    As with ``pounce_wrap_app``, a ``tryfirst`` wrapper ends up outermost. Called
    once per worker; when no plugin answers, the core's factory is used as
    is, so the hook costs nothing per connection.
    """


# -- LIFESPAN -------------------------------------------------------------


@hookspec
def pounce_lifespan_startup(config: ServerConfig, state: dict[str, Any]) -> None:
    """The app's lifespan startup has completed; ``state`` is its state dict."""


@hookspec
def pounce_lifespan_shutdown(config: ServerConfig, state: dict[str, Any]) -> None:
    """The app's lifespan shutdown is about to run."""


# -- SERVE ----------------------------------------------------------------


@hookspec(firstresult=True)
def pounce_serve(server: Server, sockets: list[socket.socket]) -> bool | None:
    """Run the workers until shutdown and return True.

    The core's trylast default is the single-worker fast path; the supervisor
    plugin answers when ``workers > 1``.
    """


# -- WORKER ---------------------------------------------------------------


@hookspec
def pounce_worker_spawn(config: ServerConfig, worker_id: int) -> None:
    """The supervisor is about to start worker ``worker_id``."""


@hookspec
def pounce_worker_started(worker: Any) -> None:
    """Runs inside the worker (thread or process) before it accepts.

    ``worker`` has ``worker_id``, ``config`` and ``loop``.
    """


@hookspec
def pounce_worker_draining(worker: Any) -> float | None:
    """Runs inside the worker (thread or process) when its graceful drain
    begins, before it stops accepting: a shutdown, a rolling restart, a
    reload, or a worker recycled after ``max_requests``.

    Called once per worker, on the worker's own loop, for every cause of a
    drain (the worker cannot tell them apart). Return a number of seconds to
    keep accepting and serving as usual before the drain proper starts, or
    None: the worker waits for the largest answer (a second stop signal cuts
    the wait short). The wait counts within ``timeout_graceful_shutdown``.
    This is how a readiness endpoint turns 503 while the listener still
    accepts, so that a load balancer stops sending before connections are
    refused (the Kubernetes preStop pattern).
    """


@hookspec
def pounce_worker_exit(config: ServerConfig, worker_id: int, exitcode: int | None) -> None:
    """The supervisor saw worker ``worker_id`` end with ``exitcode``."""


# -- REQUEST --------------------------------------------------------------


@hookspec
def pounce_request_observer(config: ServerConfig) -> Any:
    """Return a callable ``(scope, status, bytes_sent, duration_s) -> None``.

    Collected once per worker; the protocol calls every returned callable after
    each response, directly, without pluggy. Keep it cheap and never raise.
    """


# -- SHUTDOWN -------------------------------------------------------------


@hookspec
def pounce_shutdown(server: Server, reason: str) -> None:
    """Graceful shutdown begins: ``"signal"``, ``"api"``, ``"reload"``, ``"error"``."""


@hookspec
def pounce_unconfigure(config: ServerConfig) -> None:
    """Everything is closed; release what ``pounce_configure`` set up."""
