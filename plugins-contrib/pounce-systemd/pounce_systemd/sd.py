"""The two systemd protocols, without libsystemd.

- Socket activation (``sd_listen_fds(3)``): systemd passes listening sockets
  as file descriptors 3, 4, ... and says how many in ``LISTEN_FDS``, for the
  process ``LISTEN_PID``.
- Notification (``sd_notify(3)``): newline-separated ``KEY=VALUE`` lines in
  one datagram to the AF_UNIX socket named by ``NOTIFY_SOCKET`` (a leading
  ``@`` means the abstract namespace).

Both read the environment once and then remove the variables, as
``sd_notify``'s ``unset_environment`` does, so that worker processes and
anything the app starts do not act on them a second time.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import MutableMapping

SD_LISTEN_FDS_START = 3
_LISTEN_VARS = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
_NOTIFY_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def take_listen_fds(env: MutableMapping[str, str] | None = None, pid: int | None = None) -> list[int]:
    """The passed file descriptors meant for this process; [] when none.

    The variables are removed whether or not they were meant for us.
    """
    env = os.environ if env is None else env
    values = {name: env.pop(name, None) for name in _LISTEN_VARS}
    if values["LISTEN_PID"] is None or values["LISTEN_FDS"] is None:
        return []
    try:
        if int(values["LISTEN_PID"]) != (os.getpid() if pid is None else pid):
            return []
        count = int(values["LISTEN_FDS"])
    except ValueError:
        return []
    return list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + max(count, 0)))


def listening_sockets(fds: list[int]) -> list[socket.socket]:
    """Wrap passed descriptors; only listening stream sockets are accepted."""
    sockets: list[socket.socket] = []
    for fd in fds:
        sock = socket.socket(fileno=fd)
        if sock.type != socket.SOCK_STREAM:
            sock.detach()
            raise ValueError(f"systemd passed fd {fd}, which is not a stream socket")
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        if not listening:
            sock.detach()
            raise ValueError(f"systemd passed fd {fd}, which is not listening (Accept=yes is not supported)")
        sock.set_inheritable(False)
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


class Notifier:
    """Sends sd_notify messages from the process systemd knows as main."""

    def __init__(self, address: str | None, watchdog_usec: int | None) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self.pid = os.getpid()

    @classmethod
    def from_environ(cls, env: MutableMapping[str, str] | None = None) -> Notifier:
        env = os.environ if env is None else env
        values = {name: env.pop(name, None) for name in _NOTIFY_VARS}
        address = values["NOTIFY_SOCKET"] or None
        watchdog: int | None = None
        if values["WATCHDOG_USEC"]:
            owner = values["WATCHDOG_PID"]
            with contextlib.suppress(ValueError):
                if owner is None or int(owner) == os.getpid():
                    watchdog = int(values["WATCHDOG_USEC"]) or None
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    @property
    def watchdog_interval(self) -> float | None:
        """Half the interval systemd asks for, as sd_watchdog_enabled(3) advises."""
        return self.watchdog_usec / 2_000_000 if self.watchdog_usec else None

    def notify(self, *lines: str) -> bool:
        """Send one datagram; False when there is nowhere to send it."""
        address = self.address
        if not address:
            return False
        target = "\0" + address[1:] if address.startswith("@") else address
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.sendto("\n".join(lines).encode("utf-8"), target)
            except OSError:
                return False
        return True
