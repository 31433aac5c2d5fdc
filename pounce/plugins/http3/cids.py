"""Connection IDs that say which worker owns a connection.

A QUIC client addresses every packet to a connection ID the server chose
(after the first round trip), whatever address or port it sends from. So
with several workers, each one issues IDs that carry its *tag*, and the
datagram router (:mod:`.router`) sends a packet to the worker named in its
destination ID: a client that migrates to another address keeps reaching
the worker that knows it (with ``SO_REUSEPORT`` the kernel would pick a
socket by address instead, and a migrated connection would land in a worker
that never heard of it).

An ID is 8 bytes: the tag, one check byte, six random bytes. The check byte
is a keyed hash of the rest (the key is made at startup and shared by the
workers), so an ID a client made up (its first Initial packets carry one)
is told apart from one of ours except by a 1-in-256 chance, which only
costs that client one wrong guess: the worker it lands in takes the
connection, and from then on its packets carry that worker's IDs.
"""

from __future__ import annotations

import hashlib
import os

CID_LENGTH = 8


def _check(key: bytes, tag: int, rest: bytes) -> int:
    return hashlib.blake2b(bytes([tag]) + rest, digest_size=1, key=key).digest()[0]


class TaggedIds:
    """Makes connection IDs for the worker with ``tag`` (1-255)."""

    __slots__ = ("key", "tag")

    def __init__(self, key: bytes, tag: int) -> None:
        self.key = key
        self.tag = tag

    def __call__(self) -> bytes:
        rest = os.urandom(CID_LENGTH - 2)
        return bytes([self.tag, _check(self.key, self.tag, rest)]) + rest


def owner_tag(key: bytes, cid: bytes) -> int | None:
    """The tag in one of our connection IDs, or None for an ID we did not make."""
    if len(cid) != CID_LENGTH:
        return None
    tag = cid[0]
    if cid[1] != _check(key, tag, cid[2:]):
        return None
    return tag


def random_id() -> bytes:
    """A connection ID for a lone worker: nothing to route."""
    return os.urandom(CID_LENGTH)
