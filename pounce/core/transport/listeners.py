"""Listeners besides the TCP ones: what a transport plugin binds and serves.

The core binds TCP (or unix) listening sockets and accepts on them itself. A
plugin that brings another transport (the ``http3`` plugin: QUIC over UDP)
binds its sockets at BIND, in the main process, like the core does, so that
privileged ports work before privileges are dropped and the banner can show
them (``pounce_bind_listeners``). It returns them as :class:`Listener`
objects. The core hands every listener to every worker the way it hands the
TCP sockets: the same objects for the single worker, duplicated descriptors
for thread workers, inherited descriptors for worker processes
(:meth:`Listener.spec` and :meth:`Listener.from_spec`); a server started by
another pounce process (the reload plugin's children) inherits its parent's
listeners (:func:`hand_down`) rather than binding them again. Inside each worker
the plugin that made a listener starts serving it (``pounce_serve_listeners``)
and returns a :class:`ListenerService`, which the worker stops at the drain
and closes when it ends.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Listener", "ListenerService", "ListenerSpec", "hand_down", "take_inherited"]

# (kind, label, options, descriptors): a listener as plain picklable data.
ListenerSpec = tuple[str, str, dict[str, Any], list[int]]


class Listener:
    """Sockets a plugin bound, to be served in every worker.

    ``kind`` names what serves it (the plugin recognises its own, e.g.
    ``"quic"``); ``label`` is the address as the banner and ``--check`` show
    it (``udp://127.0.0.1:8443 (HTTP/3)``); ``options`` is plain picklable
    data the plugin needs in the workers (it crosses into worker processes).
    ``on_close`` runs once when the process that bound the listener closes it
    (the http3 plugin stops its datagram router there); copies made for
    workers do not carry it.
    """

    __slots__ = ("kind", "label", "options", "sockets", "_on_close", "_closed")

    def __init__(self, kind: str, label: str, sockets: list[socket.socket], *,
                 options: dict[str, Any] | None = None, on_close: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self.label = label
        self.sockets = sockets
        self.options: dict[str, Any] = dict(options or {})
        self._on_close = on_close
        self._closed = False

    def __repr__(self) -> str:
        return f"Listener({self.kind!r}, {self.label!r}, {len(self.sockets)} sockets)"

    def duplicate(self) -> Listener:
        """A copy on duplicated descriptors (a thread worker closes its own)."""
        return Listener(self.kind, self.label, [sock.dup() for sock in self.sockets], options=self.options)

    def spec(self) -> ListenerSpec:
        """What a worker process needs to rebuild this listener; the
        descriptors must be passed to it (``pass_fds``)."""
        return (self.kind, self.label, dict(self.options), [sock.fileno() for sock in self.sockets])

    @classmethod
    def from_spec(cls, spec: ListenerSpec) -> Listener:
        """The listener a worker process inherited (see :meth:`spec`)."""
        kind, label, options, fds = spec
        return cls(kind, label, [socket.socket(fileno=fd) for fd in fds], options=options)

    def close(self) -> None:
        """Close the sockets (once each) and run ``on_close``."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._on_close is not None:
                self._on_close()
        finally:
            seen: set[int] = set()
            for sock in self.sockets:
                fd = sock.fileno()
                if fd == -1 or fd in seen:
                    continue
                seen.add(fd)
                with contextlib.suppress(OSError):
                    sock.close()


# Listeners this process got from the one that started it (the reload
# plugin's server children inherit the parent's), for the next Server's BIND.
_inherited: list[Listener] = []


def hand_down(specs: list[ListenerSpec]) -> None:
    """In a child process: adopt listeners the parent bound (their
    descriptors were inherited), so that BIND reuses them instead of binding
    the same address again (``pounce_bind_listeners`` gets them as
    ``inherited``)."""
    _inherited[:] = [Listener.from_spec(spec) for spec in specs]


def take_inherited() -> list[Listener]:
    """The inherited listeners, once (the Server that takes them owns them)."""
    taken = list(_inherited)
    _inherited.clear()
    return taken


class ListenerService(Protocol):
    """A listener being served in one worker (what ``pounce_serve_listeners``
    returns). Connections it accepts join the worker's connection set, with
    ``shutdown()`` and ``abort()`` as the HTTP/1.1 ones have, so the drain
    treats them alike."""

    def stop_accepting(self) -> None:
        """The drain begins: take no new connections, keep serving the
        ones in progress."""

    def close(self) -> None:
        """The worker is done: release the sockets and anything left."""
