"""Several workers on one UDP port: a datagram router in the main process.

TCP needs nothing of the sort: the kernel hands each accepted connection to
one worker, and its bytes follow it. UDP has no connections; if every worker
read the shared socket, each datagram would go to whichever worker woke
first, and with ``SO_REUSEPORT`` the kernel picks a socket by the sender's
address, which sends a QUIC connection to another worker as soon as the
client's address changes (a phone moving from Wi-Fi to 4G, a NAT rebinding:
QUIC connection migration, hypercorn issue #114). Either way a worker gets
packets of connections it does not know.

So with more than one worker, one thread of the main process reads the UDP
socket and sends each datagram to the worker that owns its connection:

* each worker registers once, passing the router one end of a fresh
  ``SOCK_SEQPACKET`` socket pair (``SCM_RIGHTS`` over a control socket every
  worker inherits), and gets back its *tag*, which it stamps into every
  connection ID it issues (:mod:`.cids`);
* a packet whose destination ID carries a live worker's tag goes to that
  worker, whatever address it comes from;
* any other packet (a client's first Initials, with an ID it made up) goes
  to one of the workers that accept, chosen by a hash of that ID, so all of
  a new client's first packets reach the same worker; a draining worker
  announces it and gets no new connections, while its own keep coming;
* a worker that is gone is noticed when its socket closes, and forgotten.

Workers send their datagrams straight to the UDP socket (they hold it too):
only the inbound direction takes the extra hop, a few microseconds per
datagram against the tens that QUIC's own processing costs.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import struct
import threading
from typing import Any

from pounce.plugins.http3.cids import CID_LENGTH, owner_tag

__all__ = ["Router", "announce_draining", "register", "unpack_datagram"]

logger = logging.getLogger("pounce.http3")

DATA = b"D"
TAG = b"T"
HELLO = b"H"
DRAINING = b"A"
CHANNEL_BUFFER = 4 * 1024 * 1024
BATCH = 256
_SEQPACKET = getattr(socket, "SOCK_SEQPACKET", socket.SOCK_DGRAM)


def _pair() -> tuple[socket.socket, socket.socket]:
    try:
        return socket.socketpair(socket.AF_UNIX, _SEQPACKET)
    except OSError:  # no SEQPACKET for unix sockets here (macOS)
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)


def pack_datagram(data: bytes, addr: Any) -> bytes:
    host, port = addr[0], addr[1]
    if ":" in host:
        return DATA + b"\x06" + socket.inet_pton(socket.AF_INET6, host) + struct.pack("!H", port) + data
    return DATA + b"\x04" + socket.inet_pton(socket.AF_INET, host) + struct.pack("!H", port) + data


def unpack_datagram(message: bytes) -> tuple[bytes, tuple[str, int]]:
    if message[1] == 6:
        host = socket.inet_ntop(socket.AF_INET6, message[2:18])
        return message[20:], (host, struct.unpack_from("!H", message, 18)[0])
    host = socket.inet_ntop(socket.AF_INET, message[2:6])
    return message[8:], (host, struct.unpack_from("!H", message, 6)[0])


def register(control: socket.socket) -> socket.socket:
    """In a worker: join the router; returns the socket datagrams arrive on
    (its first message is the worker's tag)."""
    mine, theirs = _pair()
    with contextlib.suppress(OSError):
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CHANNEL_BUFFER)
    with contextlib.suppress(OSError):
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CHANNEL_BUFFER)
    socket.send_fds(control, [HELLO], [theirs.fileno()])
    theirs.close()
    mine.setblocking(False)
    return mine


def announce_draining(control: socket.socket, tag: int) -> None:
    """In a worker: send no new connections here any more."""
    with contextlib.suppress(OSError):
        control.send(DRAINING + bytes([tag]))


class Router:
    """The main process's datagram router (one thread)."""

    def __init__(self, udp: socket.socket, key: bytes) -> None:
        self.udp = udp
        self.key = key
        self.router_end, self.worker_end = _pair()
        self.workers: dict[int, socket.socket] = {}
        self.accepting: list[int] = []
        self._next_tag = 1
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.routed = 0
        self.dropped = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pounce-http3-router", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close the router's sockets (not the UDP
        socket: whoever bound it closes it)."""
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(5.0)
        for sock in (*self.workers.values(), self.router_end, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                sock.close()
        self.workers.clear()

    # -- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        selector = self._selector
        selector.register(self.udp, selectors.EVENT_READ, self._forward)
        selector.register(self.router_end, selectors.EVENT_READ, self._control)
        selector.register(self._wake_r, selectors.EVENT_READ, None)
        try:
            while not self._stopping:
                for key, _ in selector.select(1.0):
                    if key.data is None:
                        return
                    try:
                        key.data(key.fileobj)
                    except Exception:  # noqa: BLE001 - the router must go on
                        logger.exception("HTTP/3 datagram router")
        finally:
            selector.close()

    def _control(self, sock: Any) -> None:
        try:
            message, fds, _, _ = socket.recv_fds(self.router_end, 64, 4)
        except (BlockingIOError, InterruptedError):
            return
        kind = message[:1]
        if kind == HELLO and fds:
            for extra in fds[1:]:
                with contextlib.suppress(OSError):
                    socket.socket(fileno=extra).close()
            channel = socket.socket(fileno=fds[0])
            channel.setblocking(False)
            tag = self._free_tag()
            if tag is None:
                logger.error("HTTP/3: more than 255 workers at once; this one gets no datagrams")
                channel.close()
                return
            try:
                channel.send(TAG + bytes([tag]))
            except OSError:
                channel.close()
                return
            self.workers[tag] = channel
            self.accepting.append(tag)
            self._selector.register(channel, selectors.EVENT_READ, self._closed)
        elif kind == DRAINING and len(message) == 2:
            with contextlib.suppress(ValueError):
                self.accepting.remove(message[1])
        else:
            for fd in fds:
                with contextlib.suppress(OSError):
                    socket.socket(fileno=fd).close()

    def _free_tag(self) -> int | None:
        for _ in range(255):
            tag = self._next_tag
            self._next_tag = tag % 255 + 1
            if tag not in self.workers:
                return tag
        return None

    def _closed(self, channel: Any) -> None:
        """A worker's socket became readable: it never sends, so it closed."""
        try:
            data = channel.recv(1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(channel)

    def _drop(self, channel: socket.socket) -> None:
        for tag, sock in list(self.workers.items()):
            if sock is channel:
                del self.workers[tag]
                with contextlib.suppress(ValueError):
                    self.accepting.remove(tag)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(channel)
        with contextlib.suppress(OSError):
            channel.close()

    def _forward(self, sock: Any) -> None:
        recvfrom = self.udp.recvfrom
        key = self.key
        workers = self.workers
        for _ in range(BATCH):
            try:
                data, addr = recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            if not data:
                continue
            if data[0] & 0x80:  # long header: the ID's length is in the packet
                if len(data) < 7:
                    continue
                length = data[5]
                cid = data[6:6 + length]
            else:
                cid = data[1:1 + CID_LENGTH]
            tag = owner_tag(key, cid)
            channel = workers.get(tag) if tag is not None else None
            if channel is None:
                accepting = self.accepting
                if not accepting:
                    self.dropped += 1
                    continue
                channel = workers[accepting[hash(cid) % len(accepting)]]
            try:
                channel.send(pack_datagram(data, addr))
            except (BlockingIOError, InterruptedError):
                self.dropped += 1  # the worker is behind: QUIC resends what matters
            except OSError:
                self._drop(channel)
            else:
                self.routed += 1
