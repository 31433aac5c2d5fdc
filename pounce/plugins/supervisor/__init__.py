"""Built-in plugin ``supervisor``: several workers (threads, processes, or
subinterpreters on Python 3.14+).

Inert with one worker: its ``pounce_serve`` answers only when
``server.workers > 1`` and otherwise leaves the core's single-worker fast
path alone. The policy lives in :mod:`.arbiter`, the worker handles in
:mod:`.workers` (and :mod:`.interpreter`), the worker process entry point in
:mod:`.child`, the worker interpreter's in :mod:`.interpreter_main`.

Other plugins (the reloader) reach a running supervisor with
:func:`supervisor_for` and call :meth:`Supervisor.restart_workers`.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from pounce import hookimpl
from pounce.plugins.supervisor.arbiter import Supervisor, SupervisorError, resolve_mode

if TYPE_CHECKING:
    import socket

    from pounce.core.server import Server

name = "supervisor"

_running: weakref.WeakKeyDictionary[Any, Supervisor] = weakref.WeakKeyDictionary()


def supervisor_for(server: Server) -> Supervisor | None:
    """The supervisor running ``server``'s workers, or None (one worker, or
    not serving yet)."""
    return _running.get(server)


@hookimpl
def pounce_add_options(options: Any) -> None:
    add = options.add
    add("supervisor", "worker_timeout", "float", 30.0,
        "Replace a worker whose heartbeat is silent for this many seconds.",
        cli="--worker-timeout", min=1, metavar="SECONDS")
    add("supervisor", "boot_timeout", "float", 60.0,
        "Kill a worker that is not accepting this many seconds after it was started.",
        min=1)
    add("supervisor", "max_restarts", "int", 5,
        "Give up (exit 1) after this many workers in a row fail within min_uptime of starting.",
        min=1)
    add("supervisor", "min_uptime", "float", 5.0,
        "A worker that dies sooner than this after starting counts as a quick failure.",
        min=0)
    add("supervisor", "backoff", "float", 0.1,
        "Delay before replacing a quickly failed worker; doubles with each failure in a row.",
        min=0)
    add("supervisor", "backoff_max", "float", 10.0,
        "Longest delay before replacing a failed worker.", min=0)
    add("supervisor", "reuse_port", "bool", False,
        "One SO_REUSEPORT listener per worker (TCP only) instead of one shared socket: better "
        "balance, but a draining worker's queued connections are reset.", cli="--reuse-port")


@hookimpl
def pounce_bind(config: Any) -> list[socket.socket] | None:
    """With reuse_port, hold the address without listening; workers listen."""
    from pounce.plugins.supervisor import reuseport

    if not reuseport.wanted(config):
        return None
    return [reuseport.hold_port(config.host, config.port)]


@hookimpl
def pounce_serve(server: Server, sockets: list[socket.socket]) -> bool | None:
    if server.workers <= 1:
        return None
    mode = resolve_mode(server)
    server.worker_mode = mode
    supervisor = Supervisor(server, mode)
    _running[server] = supervisor
    try:
        supervisor.run()
    finally:
        _running.pop(server, None)
    return True


__all__ = ["Supervisor", "SupervisorError", "supervisor_for"]
