"""Creating and closing listening sockets.

The core's default ``pounce_bind`` comes from here: a TCP host/port (IPv4 or
IPv6), a unix socket path, or an inherited file descriptor.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from typing import Any

from pounce.core.errors import BindError


def bind_tcp(
    host: str, port: int, backlog: int, *, reuse_port: bool = False, listen: bool = True
) -> socket.socket:
    """Bind a TCP socket; ``listen=False`` only reserves the address (with
    ``reuse_port``, for listeners that workers bind to the same address)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(f"could not bind {host}:{port}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port and hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6 and host in ("::", ""):
            # Accept IPv4 too on the wildcard address, as most users expect.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        if listen:
            sock.listen(backlog)
    except OSError as exc:
        sock.close()
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise BindError(f"could not bind {format_host(host)}:{port}: {reason}") from None
    sock.setblocking(False)
    return sock


def bind_unix(path: str, backlog: int, permissions: int | None = None) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)  # stale socket from a previous run
            else:
                probe.close()
                raise BindError(f"could not bind unix socket {path}: another server is listening there")
            finally:
                probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        if permissions is not None:
            os.chmod(path, permissions)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise BindError(f"could not bind unix socket {path}: {reason}") from None
    sock.setblocking(False)
    return sock


def from_fd(fd: int, backlog: int) -> socket.socket:
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise BindError(f"could not use file descriptor {fd}: {exc.strerror}") from None
    if sock.type != socket.SOCK_STREAM:
        raise BindError(f"file descriptor {fd} is not a stream socket")
    with contextlib.suppress(OSError):
        sock.listen(backlog)
    sock.setblocking(False)
    return sock


def bind_from_config(config: Any) -> list[socket.socket]:
    if config.fd is not None:
        return [from_fd(config.fd, config.backlog)]
    if config.uds:
        perms = config.get("server", "uds_permissions")
        mode = int(perms, 8) if isinstance(perms, str) and perms else None
        return [bind_unix(config.uds, config.backlog, mode)]
    return [bind_tcp(config.host, config.port, config.backlog)]


def format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def describe(sock: socket.socket, scheme: str = "http") -> str:
    """A URL-ish address for the banner, with the real port after binding to 0."""
    try:
        name = sock.getsockname()
    except OSError:
        return "?"
    if sock.family == socket.AF_UNIX:
        return f"unix:{name}"
    host, port = name[0], name[1]
    return f"{scheme}://{format_host(host)}:{port}"


def close_sockets(sockets: list[socket.socket]) -> None:
    """Close each socket once, even when several objects share one fd, and
    remove the files of unix sockets we made."""
    seen: set[int] = set()
    for sock in sockets:
        fd = sock.fileno()
        if fd == -1 or fd in seen:
            continue
        seen.add(fd)
        path = None
        if sock.family == socket.AF_UNIX:
            with contextlib.suppress(OSError):
                path = sock.getsockname()
        with contextlib.suppress(OSError):
            sock.close()
        if path and isinstance(path, str):
            with contextlib.suppress(OSError):
                os.unlink(path)
