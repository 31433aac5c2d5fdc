"""Entry point of a worker process.

The process starts from a fresh interpreter (``python -c``), never from a
fork of the supervisor, so it shares no event loop, thread or lock with it.
It rebuilds what cannot cross a process boundary — the plugin manager, the
option registry, the app, the TLS context — and runs the app's lifespan
itself, so per-process resources (connection pools) live where they are used.

Exit status: 0 after a clean stop, 3 when the lifespan startup failed, 1 for
anything else (the error is logged on stderr first).
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
import socket
from typing import Any

from pounce.core.errors import LifespanError, PounceError
from pounce.core.transport.listeners import Listener
from pounce.plugins.supervisor.workers import (
    BEAT,
    ERROR,
    EXIT_LIFESPAN,
    READY,
    RETIRE,
    ChildSpec,
    close_quietly,
)

logger = logging.getLogger("pounce.supervisor")


class StatusPipe:
    """The write end of the pipe to the supervisor; never blocks, never raises."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)

    def send(self, code: bytes, text: str = "") -> None:
        line = code + (b" " + " ".join(text.split()).encode("utf-8", "replace")[:500] if text else b"") + b"\n"
        try:
            os.write(self.fd, line)
        except OSError:
            pass  # supervisor gone or pipe full: the heartbeat check copes


def main(blob: bytes) -> int:
    # Ctrl-C (and a terminal's hangup, TTIN/TTOU) reaches the whole process
    # group. Those are the supervisor's signals: it decides how workers stop
    # and change, so a worker ignores them and waits for SIGTERM.
    for name in ("SIGINT", "SIGHUP", "SIGTTIN", "SIGTTOU"):
        signum = getattr(signal, name, None)
        if signum is not None:
            signal.signal(signum, signal.SIG_IGN)
    spec: ChildSpec = pickle.loads(blob)
    # stdin carried the spec; the app gets /dev/null, as in the supervisor.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    status = StatusPipe(spec.status_fd)
    try:
        _run(spec, status)
    except LifespanError as exc:
        logger.error("worker %d: %s", spec.worker_id, exc)
        status.send(ERROR, str(exc))
        return EXIT_LIFESPAN
    except PounceError as exc:
        logger.error("worker %d: %s", spec.worker_id, exc)
        status.send(ERROR, str(exc))
        return exc.exit_code
    except Exception as exc:
        logger.exception("worker %d crashed", spec.worker_id)
        status.send(ERROR, f"{type(exc).__name__}: {exc}")
        return 1
    return 0


def _load_plugins(spec: ChildSpec) -> list[object]:
    plugins: list[object] = []
    for blob in spec.plugins:
        try:
            plugins.append(pickle.loads(blob))
        except Exception as exc:  # noqa: BLE001 - the worker still serves
            logger.warning("worker %d: a programmatic plugin could not be rebuilt: %s", spec.worker_id, exc)
    return plugins


def _run(spec: ChildSpec, status: StatusPipe) -> None:
    from pounce.core.asgi.appload import load_app
    from pounce.core.boot import run_loop
    from pounce.core.plugins import build_plugin_manager, culprit_error
    from pounce.core.server import ensure_log_output

    section = spec.config.section("plugins")
    # A worker never reloads: the file watcher belongs to the parent.
    disable = sorted(set(section.get("disable", ())) | {"reload"})
    manager = build_plugin_manager(
        enable=section.get("enable", ()), disable=disable,
        autoload=bool(section.get("autoload", False)), extra=_load_plugins(spec),
    )
    config = spec.config.with_defaults(manager.registry)
    try:
        manager.hook.pounce_configure.call_historic(kwargs={"config": config})
    except PounceError:
        raise
    except Exception as exc:
        raise culprit_error(manager, exc, "pounce_configure") from exc
    ensure_log_output()
    sockets = [socket.socket(fileno=fd) for fd in spec.fds]
    if spec.reuse_port:
        from pounce.plugins.supervisor.reuseport import worker_listeners

        held, sockets = sockets, worker_listeners(sockets, config.backlog)
        close_quietly(held)
    listeners = [Listener.from_spec(item) for item in spec.listeners]
    try:
        app = load_app(spec.app_path, factory=config.factory, app_dir=config.app_dir)
        tls = manager.call("pounce_tls_context", config=config)
        run_loop(_serve(spec, config, manager, app, tls, sockets, status, listeners), config.loop)
    finally:
        close_quietly(sockets)
        for listener in listeners:
            listener.close()
        manager.call("pounce_unconfigure", config=config)


async def _serve(spec: ChildSpec, config: Any, manager: Any, app: Any, tls: Any,
                 sockets: list[socket.socket], status: StatusPipe, listeners: list[Listener]) -> None:
    from pounce.core.boot import WorkerLifespan, serve_worker

    loop = asyncio.get_running_loop()
    holder: dict[str, Any] = {"worker": None, "signals": 0}

    def on_term() -> None:
        # First SIGTERM drains, a second one aborts open connections.
        holder["signals"] += 1
        worker = holder["worker"]
        if worker is not None:
            worker.stop(holder["signals"] > 1)

    def ready(worker: Any) -> None:
        holder["worker"] = worker
        if holder["signals"]:
            worker.stop(holder["signals"] > 1)
        status.send(READY)

    def beat(worker: Any) -> None:
        status.send(BEAT)
        if os.getppid() != spec.parent_pid:
            logger.warning("worker %d: supervisor is gone; stopping", spec.worker_id)
            worker.stop()

    loop.add_signal_handler(signal.SIGTERM, on_term)
    await serve_worker(
        manager, config, app, sockets, tls=tls, worker_id=spec.worker_id,
        lifespan=WorkerLifespan(manager, config), max_requests=spec.max_requests,
        on_request_limit=lambda: status.send(RETIRE), on_ready=ready, heartbeat=(spec.heartbeat, beat),
        listeners=listeners,
    )
