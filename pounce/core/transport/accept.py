"""Accepting when file descriptors run out.

When ``accept()`` fails with EMFILE/ENFILE, asyncio's selector loop logs it
and schedules a retry, but does not leave its accept loop: one readable event
makes up to ``backlog`` failed accepts, each logging a traceback and arming
another retry timer, so the worker floods its log (tens of thousands of lines
a second) and spins until descriptors come back. A worker therefore listens
on a :class:`SheddingSocket`, whose ``accept()`` sheds instead: it keeps one
spare descriptor, and when out of them, frees the spare, accepts the waiting
connection, answers it 503 (plain HTTP) or just closes it (TLS), and takes
the spare back. The queue drains, clients get an answer instead of a hang,
the log gets one line every few seconds, and accepting resumes by itself as
soon as descriptors free up. (libuv and nginx do the same; uvloop does not
use this ``accept()`` at all.)
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import threading
import time
from typing import Any

from pounce.core.protocol.responses import error_response

__all__ = ["SheddingSocket"]

logger = logging.getLogger("pounce.worker")

_SHED_503 = error_response(503)
_LOG_EVERY = 5.0


class _Shedder:
    """The spare descriptor and counters of one listening socket."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer
        self.lock = threading.Lock()  # thread workers share a listening socket
        self.spare = self._open_spare()
        self.shed = 0
        self.last_log = 0.0

    @staticmethod
    def _open_spare() -> int:
        try:
            return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return -1

    def shed_one(self, sock: socket.socket, exc: OSError) -> None:
        with self.lock:
            if self.spare >= 0:
                os.close(self.spare)
                self.spare = -1
                try:
                    conn, _ = socket.socket.accept(sock)
                except OSError:
                    conn = None
                if conn is not None:
                    with contextlib.suppress(OSError):
                        conn.setblocking(False)
                        if self.answer:
                            conn.send(self.answer)
                    conn.close()
                    self.shed += 1
                self.spare = self._open_spare()
            now = time.monotonic()
            if now - self.last_log >= _LOG_EVERY:
                self.last_log = now
                logger.error("out of file descriptors (%s): shedding new connections "
                             "(%d shed so far); accepting resumes when descriptors are free",
                             exc.strerror, self.shed)

    def close(self) -> None:
        with self.lock:
            if self.spare >= 0:
                os.close(self.spare)
                self.spare = -1


class SheddingSocket(socket.socket):
    """A listening socket, on a descriptor of its own, that sheds connections
    instead of failing ``accept()`` when the process is out of descriptors."""

    __slots__ = ("_shedder",)

    @classmethod
    def listen_on(cls, sock: socket.socket, *, tls: bool) -> SheddingSocket:
        """A shedding socket on a duplicate of ``sock``'s descriptor (the
        event loop closes it when the worker stops; ``sock`` stays open)."""
        new = cls(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno()))
        new.setblocking(False)
        new._shedder = _Shedder(None if tls else _SHED_503)
        return new

    def accept(self) -> tuple[socket.socket, Any]:
        try:
            return super().accept()
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            self._shedder.shed_one(self, exc)
            # "Nothing more to accept now": asyncio leaves its accept loop
            # quietly and tries again on the next readable event.
            raise BlockingIOError(errno.EAGAIN, "shed a connection: out of descriptors") from None

    def close(self) -> None:
        shedder = getattr(self, "_shedder", None)
        if shedder is not None:
            shedder.close()
        super().close()
