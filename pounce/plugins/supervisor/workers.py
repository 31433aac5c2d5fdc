"""Worker handles: what the supervisor holds for each thread or process.

The supervisor's policy (how many, when to replace, when to give up) lives in
``arbiter.py`` and only talks to a handle through a few members: ``start``,
``poll`` (exit code or None), ``stop(force)``, ``kill``, and the flags a worker
reports back — ``ready``, ``wants_retire`` and ``last_beat``. Threads report by
setting attributes; processes write one byte per report on a status pipe
(``R`` ready, ``H`` heartbeat, ``X`` max_requests reached, ``E`` and the
error that ends it), one per line, which the
supervisor's event loop reads. No object made in the parent's event loop
crosses into a child process: a child gets pickled plain data and file
descriptors only.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pounce.core.server import Server

logger = logging.getLogger("pounce.supervisor")

# Status lines a worker process writes on its pipe; "E <text>" carries the
# error that ends a worker, so the supervisor can name it.
READY = b"R"
BEAT = b"H"
RETIRE = b"X"
ERROR = b"E"

# Exit status of a worker process whose lifespan startup failed.
EXIT_LIFESPAN = 3


class Phase(enum.Enum):
    """A worker's life as the supervisor sees it."""

    BOOTING = "booting"    # started, not accepting yet
    READY = "ready"        # accepting connections
    DRAINING = "draining"  # told to stop; finishing in-flight requests


class WorkerHandle:
    """Supervisor-side state of one worker, whatever runs it."""

    kind = "?"

    def __init__(self, worker_id: int, max_requests: int) -> None:
        self.worker_id = worker_id
        self.max_requests = max_requests
        self.phase = Phase.BOOTING
        now = time.monotonic()
        self.spawned_at = now
        self.ready_at: float | None = None
        self.last_beat = now
        self.ready = False
        self.wants_retire = False
        # Why the supervisor wants this worker replaced ("restart",
        # "max_requests"); a marked worker keeps serving until its
        # replacement is ready.
        self.marked: str | None = None
        self.drain_reason: str | None = None
        self.drain_deadline = 0.0
        self.forced = False
        self.forced_at = 0.0
        # Set when the supervisor ended the worker itself (heartbeat timeout).
        self.kill_reason: str | None = None
        self.error: str | None = None

    def describe(self) -> str:
        return f"worker {self.worker_id}"

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        raise NotImplementedError

    def poll(self) -> int | None:
        """The exit code once the worker has ended, else None."""
        raise NotImplementedError

    def stop(self, force: bool = False) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        """End an unresponsive worker (the heartbeat timeout)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release supervisor-side resources after the worker ended."""


# -- threads -------------------------------------------------------------------


class ThreadWorker(WorkerHandle):
    """A worker thread with its own event loop, sharing the app and the
    lifespan state of the main thread."""

    kind = "thread"

    def __init__(self, worker_id: int, max_requests: int, server: Server, heartbeat: float) -> None:
        super().__init__(worker_id, max_requests)
        self.server = server
        self.heartbeat = heartbeat
        self.thread: threading.Thread | None = None
        self.exitcode: int | None = None
        self.abandoned = False
        self._worker: Any = None
        self._stop_request: bool | None = None  # None: not asked; else "force"

    def describe(self) -> str:
        return f"worker {self.worker_id} (thread)"

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.thread = threading.Thread(
            target=self._main, name=f"pounce-worker-{self.worker_id}", daemon=True
        )
        self.thread.start()

    def poll(self) -> int | None:
        if self.thread is None or self.thread.is_alive():
            return None
        return self.exitcode if self.exitcode is not None else 1

    def stop(self, force: bool = False) -> None:
        self._stop_request = bool(force or self._stop_request)
        worker = self._worker
        if worker is not None:
            worker.stop_threadsafe(force)

    def kill(self) -> None:
        # A thread cannot be killed. Ask it to abort (it will, if its loop
        # ever runs again) and stop waiting for it: the supervisor treats it
        # as gone and starts a replacement.
        self.abandoned = True
        self.stop(force=True)

    def _main(self) -> None:
        from pounce.core.boot import run_loop

        try:
            run_loop(self._serve(), self.server.config.loop)
        except BaseException as exc:  # noqa: BLE001 - reported to the supervisor
            self.error = f"{type(exc).__name__}: {exc}"
            logger.debug("%s crashed", self.describe(), exc_info=exc)
            self.exitcode = 1
        else:
            self.exitcode = 0

    async def _serve(self) -> None:
        from pounce.core.boot import serve_worker
        from pounce.plugins.supervisor.reuseport import is_listening, worker_listeners

        server = self.server
        config = server.config
        # Each thread gets its own descriptors for the listening sockets:
        # asyncio closes the socket it serves on when that server closes,
        # which must not close the socket under the other workers.
        if all(is_listening(sock) for sock in server.sockets):
            sockets = [sock.dup() for sock in server.sockets]
        else:  # reuse_port: the supervisor only holds the address
            sockets = worker_listeners(server.sockets, config.backlog)
        # Plugins' listeners (UDP for HTTP/3) on duplicates too, for the same reason.
        listeners = [listener.duplicate() for listener in server.listeners]
        try:
            await serve_worker(
                server.plugins, config, server.app, sockets, tls=server.tls_context,
                worker_id=self.worker_id, state=server.lifespan_state,
                max_requests=self.max_requests, on_request_limit=self._retire,
                on_ready=self._ready, heartbeat=(self.heartbeat, self._beat),
                listeners=listeners,
            )
        finally:
            close_quietly(sockets)
            for listener in listeners:
                listener.close()

    def _ready(self, worker: Any) -> None:
        self._worker = worker
        if self._stop_request is not None:
            worker.stop(self._stop_request)
        self.last_beat = time.monotonic()
        self.ready = True

    def _beat(self, worker: Any) -> None:
        self.last_beat = time.monotonic()
        if self.abandoned:
            worker.stop(True)

    def _retire(self) -> None:
        self.wants_retire = True


# -- processes -----------------------------------------------------------------


@dataclass
class ChildSpec:
    """Everything a worker process needs, as plain picklable data."""

    worker_id: int
    config: Any  # ServerConfig: pickles without its registry
    app_path: str
    fds: list[int]
    status_fd: int
    max_requests: int
    heartbeat: float
    parent_pid: int
    reuse_port: bool = False  # fds are held addresses: bind own listeners to them
    plugins: list[bytes] = field(default_factory=list)  # pickled programmatic plugins
    # Plugins' listeners (Listener.spec()); their fds are inherited too.
    listeners: list[Any] = field(default_factory=list)


# The child reads its sys.path (one JSON line) and then the pickled spec from
# stdin, so `ps` shows a short command line ending in "pounce-worker-N".
_BOOT = (
    "import sys, json; sys.path[:] = json.loads(sys.stdin.buffer.readline()); "
    "from pounce.plugins.supervisor.child import main; sys.exit(main(sys.stdin.buffer.read()))"
)


class ProcessWorker(WorkerHandle):
    """A worker process started fresh (fork + exec of the interpreter): it
    imports the app itself and runs its own lifespan."""

    kind = "process"

    def __init__(self, worker_id: int, max_requests: int, server: Server, heartbeat: float,
                 plugins: list[bytes]) -> None:
        super().__init__(worker_id, max_requests)
        self.server = server
        self.heartbeat = heartbeat
        self.plugins = plugins
        self.proc: subprocess.Popen[bytes] | None = None
        self._status_fd: int | None = None
        self._partial = b""
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def describe(self) -> str:
        return f"worker {self.worker_id} (pid {self.pid})"

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        from pounce.plugins.supervisor.reuseport import is_listening

        server = self.server
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        fds = [sock.fileno() for sock in server.sockets]
        listeners = [listener.spec() for listener in server.listeners]
        listener_fds = [fd for _, _, _, owned in listeners for fd in owned]
        spec = ChildSpec(
            worker_id=self.worker_id,
            config=server.config,
            app_path=str(server.app_path),
            fds=fds,
            status_fd=write_fd,
            max_requests=self.max_requests,
            heartbeat=self.heartbeat,
            parent_pid=os.getpid(),
            plugins=self.plugins,
            reuse_port=not all(is_listening(sock) for sock in server.sockets),
            listeners=listeners,
        )
        payload = json.dumps(sys.path).encode() + b"\n" + pickle.dumps(spec)
        try:
            # subprocess forks and execs at once: nothing of this process's
            # event loop or threads survives into the child.
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, f"pounce-worker-{self.worker_id}"],
                pass_fds=[*fds, *listener_fds, write_fd], stdin=subprocess.PIPE,
            )
            assert self.proc.stdin is not None
            try:
                with self.proc.stdin:
                    self.proc.stdin.write(payload)
            except BrokenPipeError:
                pass  # the child died at once; reaped like any boot failure
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self._status_fd = read_fd
        self._loop = loop
        loop.add_reader(read_fd, self._on_status)

    def _on_status(self) -> None:
        fd = self._status_fd
        if fd is None:
            return
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close_status()
            return
        self.last_beat = time.monotonic()
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            code = line[:1]
            if code == READY:
                self.ready = True
            elif code == RETIRE:
                self.wants_retire = True
            elif code == ERROR:
                self.error = line[2:].decode("utf-8", "replace")

    def _close_status(self) -> None:
        fd, self._status_fd = self._status_fd, None
        if fd is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(fd)
        with contextlib.suppress(OSError):
            os.close(fd)

    def poll(self) -> int | None:
        code = self.proc.poll() if self.proc is not None else 1
        if code is not None:
            # Read what the worker said last (its error) before it is reaped.
            while self._status_fd is not None and self._readable(self._status_fd):
                self._on_status()
        return code

    @staticmethod
    def _readable(fd: int) -> bool:
        import select

        try:
            return bool(select.select([fd], [], [], 0)[0])
        except (OSError, ValueError):
            return False

    def _signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signum)

    def stop(self, force: bool = False) -> None:
        # SIGTERM drains (a second one, from the child's view, aborts);
        # forcing from the supervisor means the process must go now.
        self._signal(signal.SIGKILL if force else signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def close(self) -> None:
        self._close_status()


def close_quietly(sockets: list[socket.socket]) -> None:
    """Close a worker's own socket objects once per fd. Unlike the Server's
    close, never unlink a unix socket's file: the main Server owns it."""
    seen: set[int] = set()
    for sock in sockets:
        fd = sock.fileno()
        if fd == -1 or fd in seen:
            continue
        seen.add(fd)
        with contextlib.suppress(OSError):
            sock.close()


def picklable_plugins(plugins: list[object]) -> list[bytes]:
    """Programmatic plugins that can be sent to worker processes."""
    out: list[bytes] = []
    for plugin in plugins:
        try:
            out.append(pickle.dumps(plugin))
        except Exception:  # noqa: BLE001 - modules, lambdas, local classes stay behind
            logger.debug("plugin %r cannot be pickled; worker processes run without it", plugin)
    return out
