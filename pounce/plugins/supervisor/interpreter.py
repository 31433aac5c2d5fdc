"""Interpreter workers: one PEP 734 subinterpreter per worker, on its own thread.

``concurrent.interpreters`` (Python 3.14) gives each interpreter its own GIL,
so N workers in one process run Python code in parallel on an ordinary GIL
build, like processes, while sharing one copy of the interpreter binary, the
shared libraries and the supervisor's memory, like threads.

Towards the supervisor an interpreter worker behaves like a worker process:
it imports the app itself, runs its own lifespan, and reports on a status
pipe (ready, heartbeat, max_requests reached, its error), which this handle
reads with the same code as :class:`ProcessWorker`. What differs is the way
in: no fork and exec, but ``Interpreter.call`` on a thread named
``pounce-worker-N``; the listening sockets cross as duplicated descriptors
that the worker owns; and since no signal can reach a subinterpreter, stop
and abort are bytes on a control pipe. Like a worker thread it cannot be
killed: one that stops answering its heartbeat is abandoned (it ends, and its
interpreter is destroyed, whenever its loop runs again).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import sys
import threading
from typing import TYPE_CHECKING, Any

from pounce.plugins.supervisor.workers import ABORT, STOP, ChildSpec, StatusPipeReader, WorkerHandle

if TYPE_CHECKING:
    import asyncio

    from pounce.core.server import Server

# Run first in each new interpreter: the supervisor's sys.path (pytest's,
# --app-dir's, PYTHONPATH's), and an argv ending in "pounce-worker-N" as a
# worker process has.
_PREPARE = "import json, sys; sys.path[:] = json.loads(_path); sys.argv[:] = json.loads(_argv); del _path, _argv"


def available() -> bool:
    """True where ``concurrent.interpreters`` exists (CPython 3.14+)."""
    try:
        import concurrent.interpreters  # noqa: F401
    except ImportError:
        return False
    return True


class InterpreterWorker(StatusPipeReader, WorkerHandle):
    """A worker in a subinterpreter of this process."""

    kind = "interpreter"
    in_process = True

    def __init__(self, worker_id: int, max_requests: int, server: Server, heartbeat: float,
                 plugins: list[bytes]) -> None:
        super().__init__(worker_id, max_requests)
        self.server = server
        self.heartbeat = heartbeat
        self.plugins = plugins
        self.interp: Any = None
        self.thread: threading.Thread | None = None
        self.exitcode: int | None = None
        self._control: int | None = None  # write end of the control pipe
        self._worker_fds: list[int] = []  # the pipe ends the worker uses
        # The interpreter and the pipes go when the thread has returned and
        # the supervisor has reaped the worker, whichever comes last.
        self._lock = threading.Lock()
        self._thread_done = False
        self._reaped = False
        self._closed = False

    def describe(self) -> str:
        where = f"interpreter {self.interp.id}" if self.interp is not None else "interpreter"
        return f"worker {self.worker_id} ({where})"

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        from concurrent import interpreters

        from pounce.plugins.supervisor.reuseport import is_listening

        server = self.server
        status_r, status_w = os.pipe()
        control_r, control_w = os.pipe()
        os.set_blocking(control_w, False)
        # Descriptors the worker's own socket objects own and close: the
        # supervisor's must outlive every worker. The same for plugins'
        # listeners (UDP for HTTP/3).
        fds = [os.dup(sock.fileno()) for sock in server.sockets]
        listeners = []
        for listener in server.listeners:
            kind, label, options, listener_fds = listener.spec()
            listeners.append((kind, label, options, [os.dup(fd) for fd in listener_fds]))
        spec = ChildSpec(
            worker_id=self.worker_id,
            config=server.config,
            app_path=str(server.app_path),
            fds=fds,
            status_fd=status_w,
            max_requests=self.max_requests,
            heartbeat=self.heartbeat,
            parent_pid=0,
            plugins=self.plugins,
            reuse_port=not all(is_listening(sock) for sock in server.sockets),
            listeners=listeners,
            control_fd=control_r,
        )
        try:
            self.interp = interpreters.create()
            self.interp.prepare_main(
                _path=json.dumps(sys.path),
                _argv=json.dumps([sys.argv[0] if sys.argv else "pounce", f"pounce-worker-{self.worker_id}"]),
            )
            self.interp.exec(_PREPARE)
        except BaseException:
            for fd in (status_r, status_w, control_r, control_w, *fds,
                       *(fd for *_, owned in listeners for fd in owned)):
                os.close(fd)
            if self.interp is not None:
                self.interp.close()
            raise
        self._control = control_w
        self._worker_fds = [status_w, control_r]
        self.thread = threading.Thread(
            target=self._main, args=(pickle.dumps(spec),), name=f"pounce-worker-{self.worker_id}", daemon=True
        )
        self.thread.start()
        self.watch_status(loop, status_r)

    def _main(self, blob: bytes) -> None:
        from concurrent.interpreters import ExecutionFailed

        from pounce.plugins.supervisor.interpreter_main import main

        try:
            self.exitcode = self.interp.call(main, blob)
        except ExecutionFailed as exc:  # a BaseException escaped main()
            self.error = self.error or f"{exc.excinfo.type.__name__}: {exc.excinfo.msg}"
            self.exitcode = 1
        except BaseException as exc:  # noqa: BLE001 - reported to the supervisor
            self.error = self.error or f"{type(exc).__name__}: {exc}"
            self.exitcode = 1
        finally:
            self._release(from_thread=True)

    def poll(self) -> int | None:
        if self.thread is None:
            return 1
        if self.thread.is_alive():
            return None
        self.drain_status()  # what the worker said last (its error)
        return self.exitcode if self.exitcode is not None else 1

    def _command(self, command: bytes) -> None:
        fd = self._control
        if fd is None:
            return
        with contextlib.suppress(OSError):  # full (it is not reading) or gone
            os.write(fd, command)

    def stop(self, force: bool = False) -> None:
        self._command(ABORT if force else STOP)

    def kill(self) -> None:
        # An interpreter cannot be killed from outside. Ask it to abort (it
        # will, if its loop ever runs again) and stop waiting for it: the
        # supervisor treats it as gone and starts a replacement.
        self.abandoned = True
        self.stop(force=True)

    def close(self) -> None:
        self.close_status()
        self._release(from_thread=False)

    def _release(self, from_thread: bool) -> None:
        """Destroy the interpreter and close the pipes once both sides are
        done with them: the worker thread has returned and the supervisor
        has reaped the worker (an abandoned worker's thread may end later)."""
        with self._lock:
            if from_thread:
                self._thread_done = True
            else:
                self._reaped = True
            if self._closed or not (self._thread_done and self._reaped):
                return
            self._closed = True
            fds, self._worker_fds = self._worker_fds, []
            control, self._control = self._control, None
        for fd in (*fds, *([control] if control is not None else [])):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.interp is not None:
            with contextlib.suppress(Exception):
                self.interp.close()
