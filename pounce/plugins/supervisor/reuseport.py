"""Opt-in ``[supervisor] reuse_port``: one ``SO_REUSEPORT`` listener per worker.

By default every worker accepts from one shared listening socket, which is
what makes drains lossless: a draining worker stops accepting and the others
keep taking connections from the same kernel queue. With ``reuse_port`` the
kernel spreads new connections over one listener per worker instead (better
balance on many cores), but each listener has its own queue, and when a
draining or dying worker closes its listener the kernel resets whatever still
waits in that queue. Hence off by default.

The supervisor binds the address with ``SO_REUSEPORT`` and does *not* listen
on it: it only holds the port (and learns it, for port 0). A socket that is
not listening receives no connections, so nothing is queued where nobody
accepts. Each worker then binds its own listener to the same address.
"""

from __future__ import annotations

import socket
from typing import Any

from pounce.core.transport.sockets import bind_tcp


def wanted(config: Any) -> bool:
    """reuse_port is on, the platform has SO_REUSEPORT, and the address is TCP."""
    from pounce.core.server import resolve_workers

    return bool(
        config.get("supervisor", "reuse_port", False)
        and hasattr(socket, "SO_REUSEPORT")
        and config.uds is None and config.fd is None
        and resolve_workers(config.workers) > 1
    )


def hold_port(host: str, port: int) -> socket.socket:
    """Bind (without listening) with SO_REUSEPORT, to reserve the address."""
    return bind_tcp(host, port, 0, reuse_port=True, listen=False)


def worker_listeners(held: list[socket.socket], backlog: int) -> list[socket.socket]:
    """A worker's own listeners on the addresses the supervisor holds."""
    out: list[socket.socket] = []
    for sock in held:
        host, port = sock.getsockname()[:2]
        out.append(bind_tcp(host, port, backlog, reuse_port=True))
    return out


def is_listening(sock: socket.socket) -> bool:
    try:
        return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
    except OSError:
        return True
