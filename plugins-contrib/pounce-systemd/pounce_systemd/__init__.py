"""pounce-systemd: run pounce as a systemd service.

- **Socket activation**: with ``LISTEN_FDS``/``LISTEN_PID`` in the
  environment, ``pounce_bind`` serves the sockets systemd passed instead of
  binding its own (TCP, IPv6 or unix; several at once).
- **sd_notify**: with ``NOTIFY_SOCKET`` set (``Type=notify``), ``READY=1``
  once every worker accepts connections, ``STOPPING=1`` when a graceful
  shutdown begins, ``WATCHDOG=1`` at half of ``WatchdogSec=``, and ``STATUS=``
  lines along the way (``systemctl status`` shows the last one).

Every notification is sent by the main process, the one systemd watches
(``NotifyAccess=main``). Worker processes (fresh interpreters started by the
supervisor) report "accepting" to it with one datagram on a unix socket in a
private temporary directory, whose path they inherit in the environment.

Enable with ``[plugins] enable = ["systemd"]``; options in ``[systemd]``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import threading
from importlib import metadata
from typing import Any

from pounce import BindError, hookimpl
from pounce_systemd.sd import Notifier, listening_sockets, take_listen_fds

name = "systemd"
SECTION = "systemd"
# Inherited by worker processes: who the main process is and where to report.
MAIN_ENV = "SYSTEMD_POUNCE_MAIN_PID"
READY_ENV = "SYSTEMD_POUNCE_READY_SOCKET"

try:
    __version__ = metadata.version("pounce-systemd")
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"


class _State:
    """What the main process knows; worker processes get a forked copy."""

    def __init__(self) -> None:
        self.main_pid = 0
        self.fds: list[int] = []
        self.activated = 0
        self.notifier = Notifier(None, None)
        self.expected = 1
        self.ready = 0
        self.announced = False
        self.addresses: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.channel: socket.socket | None = None
        self.channel_dir: str | None = None
        self.report_to: str | None = None


_state = _State()


@hookimpl
def pounce_add_options(options: Any) -> None:
    options.add(SECTION, "socket_activation", "bool", True,
                "Serve the sockets systemd passes (LISTEN_FDS) instead of binding.")
    options.add(SECTION, "notify", "bool", True,
                "Send sd_notify messages (READY, STOPPING, STATUS) when NOTIFY_SOCKET is set.")
    options.add(SECTION, "watchdog", "bool", True,
                "Send WATCHDOG=1 at half the interval systemd asks for (WATCHDOG_USEC).")


@hookimpl
def pounce_configure(config: Any) -> None:
    global _state
    main = os.environ.get(MAIN_ENV)
    if main and main != str(os.getpid()):
        # A worker process: report readiness to the main process, nothing else.
        _state = _State()
        _state.main_pid = int(main)
        _state.report_to = os.environ.get(READY_ENV)
        return
    _close(_state)
    state = _state = _State()
    state.main_pid = os.getpid()
    if config.get(SECTION, "socket_activation"):
        state.fds = take_listen_fds()
    if config.get(SECTION, "notify"):
        state.notifier = Notifier.from_environ()
    if not state.notifier.enabled:
        return
    workers = config.workers
    state.expected = (os.cpu_count() or 1) if workers == "auto" else int(workers)
    state.notifier.notify("STATUS=starting")
    state.channel_dir = tempfile.mkdtemp(prefix="pounce-systemd-")  # mode 0700: ours only
    path = os.path.join(state.channel_dir, "ready.sock")
    state.channel = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    state.channel.bind(path)
    os.environ[MAIN_ENV] = str(state.main_pid)
    os.environ[READY_ENV] = path
    _start(state, _listen_for_workers, state.channel)
    interval = state.notifier.watchdog_interval
    if interval and config.get(SECTION, "watchdog"):
        _start(state, _watchdog, interval)


def _start(state: _State, target: Any, *args: Any) -> None:
    thread = threading.Thread(target=target, args=(state, *args), name=f"systemd-{target.__name__}", daemon=True)
    state.threads.append(thread)
    thread.start()


def _listen_for_workers(state: _State, sock: socket.socket) -> None:
    """Main process: count "accepting" reports from worker processes."""
    sock.settimeout(0.2)
    while not state.stop.is_set():
        try:
            message = sock.recv(64)
        except TimeoutError:
            continue
        except OSError:
            return
        if message.startswith(b"ready"):
            _worker_ready(state)


def _watchdog(state: _State, interval: float) -> None:
    state.notifier.notify("WATCHDOG=1")
    while not state.stop.wait(interval):
        state.notifier.notify("WATCHDOG=1")


def _worker_ready(state: _State) -> None:
    # Under the lock, so that thread workers' messages leave in count order.
    with state.lock:
        state.ready += 1
        ready, expected = state.ready, state.expected
        first = not state.announced and ready >= expected
        if first:
            state.announced = True
        where = ", ".join(state.addresses) or "inherited sockets"
        status = f"STATUS=serving on {where} ({min(ready, expected)}/{expected} workers accepting)"
        if first:
            state.notifier.notify("READY=1", status, f"MAINPID={state.main_pid}")
        else:
            state.notifier.notify(status)


@hookimpl
def pounce_bind(config: Any) -> list[socket.socket] | None:
    """Serve what systemd passed; None lets the core bind as configured."""
    if not _state.fds or _state.main_pid != os.getpid():
        return None
    try:
        sockets = listening_sockets(_state.fds)
    except (OSError, ValueError) as exc:
        raise BindError(f"systemd socket activation: {exc}") from None
    _state.fds = []
    _state.activated = len(sockets)
    return sockets


@hookimpl
def pounce_sockets_bound(config: Any, sockets: list[socket.socket]) -> None:
    _state.addresses = [_describe(sock) for sock in sockets]
    if _state.notifier.enabled:
        _state.notifier.notify(f"STATUS=listening on {', '.join(_state.addresses)}; starting workers")


def _describe(sock: socket.socket) -> str:
    try:
        name = sock.getsockname()
    except OSError:
        return "?"
    if sock.family == socket.AF_UNIX:
        return f"unix:{name}"
    host = f"[{name[0]}]" if ":" in name[0] else name[0]
    return f"{host}:{name[1]}"


@hookimpl
def pounce_worker_started(worker: Any) -> None:
    """Inside the worker, just before it accepts: report to the main process."""
    state = _state
    if state.report_to:
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"ready %d" % worker.worker_id, state.report_to)
    elif state.notifier.enabled and os.getpid() == state.main_pid:
        _worker_ready(state)  # the single worker, or a worker thread


@hookimpl
def pounce_worker_exit(config: Any, worker_id: int, exitcode: int | None) -> None:
    state = _state
    if not state.notifier.enabled or os.getpid() != state.main_pid:
        return
    with state.lock:
        state.ready = max(state.ready - 1, 0)
        state.notifier.notify(f"STATUS=worker {worker_id} exited ({exitcode}); "
                              f"{state.ready}/{state.expected} workers accepting")


@hookimpl
def pounce_shutdown(server: Any, reason: str) -> None:
    state = _state
    if state.notifier.enabled and os.getpid() == state.main_pid:
        state.notifier.notify("STOPPING=1", f"STATUS=shutting down ({reason})")


@hookimpl
def pounce_banner(config: Any) -> list[str]:
    state = _state
    lines = []
    if state.activated:
        lines.append(f"systemd: serving {state.activated} socket(s) passed by socket activation")
    if state.notifier.enabled:
        interval = state.notifier.watchdog_interval
        watchdog = f", watchdog every {interval:g}s" if interval and config.get(SECTION, "watchdog") else ""
        lines.append(f"systemd: notifying {state.notifier.address}{watchdog}")
    return lines


@hookimpl
def pounce_unconfigure(config: Any) -> None:
    if _state.main_pid == os.getpid():
        if _state.notifier.enabled:
            _state.notifier.notify("STATUS=stopped")
        _close(_state)


def _close(state: _State) -> None:
    state.stop.set()
    for thread in state.threads:
        thread.join(2)
    if state.channel is not None:
        state.channel.close()
        state.channel = None
    if state.channel_dir is not None:
        shutil.rmtree(state.channel_dir, ignore_errors=True)
        state.channel_dir = None
        for var in (MAIN_ENV, READY_ENV):
            os.environ.pop(var, None)


__all__ = ["__version__", "name"]
