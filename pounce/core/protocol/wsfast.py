"""A fast path for the WebSocket frames an open connection mostly carries.

wsproto reads any frame and costs some eighty Python calls for a 16-byte
message; most frames a server receives are simple: one whole text or binary
message per frame (FIN set, no RSV bits, no extension), masked as a client's
must be, with a length in its shortest form, or a ping or pong (a frame over
``HOLD_MAX`` that arrives in pieces is left to wsproto too). Like h1fast
for request heads, :func:`read_frames` reads those and answers only when it
is sure: the first frame that is anything else (a close, a fragment, a bad
mask, text that is not UTF-8, a length over the limit, an 8-byte length) is
left where it starts, for wsproto, which then reads the rest of the
connection and gives the error its own close code. :func:`frame` writes an
unfragmented, unmasked server frame, byte for byte as wsproto would.

``tests/unit/test_websocket_fast.py`` feeds the same frames, split anywhere,
to a session with and without this path and compares everything that comes
out (messages, pongs, close codes).
"""

from __future__ import annotations

import codecs
from typing import Any

__all__ = ["TEXT", "BINARY", "PING", "PONG", "read_frames", "frame"]

TEXT, BINARY, PING, PONG = 0x1, 0x2, 0x9, 0xA

# First byte of a simple frame (FIN, no RSV) -> its opcode.
_SIMPLE_FIRST = {0x80 | TEXT: TEXT, 0x80 | BINARY: BINARY, 0x80 | PING: PING, 0x80 | PONG: PONG}
_from_bytes = int.from_bytes
_decoder = codecs.getincrementaldecoder("utf-8")
# The largest incomplete frame kept back to be read whole.
HOLD_MAX = 256 * 1024


def read_frames(buf: bytes, max_size: int) -> tuple[list[tuple[int, Any]], int, bool]:
    """The simple frames at the start of ``buf``: ``(frames, used, stop)``.

    ``frames`` are ``(opcode, payload)`` pairs, unmasked, a text payload
    decoded to ``str``; ``used`` is the bytes they took. ``stop`` is True
    when the frame at ``used`` is not one this path reads (the caller hands
    everything from there on to wsproto), False when ``buf[used:]`` is only
    the incomplete start of a frame (or nothing).
    """
    frames: list[tuple[int, Any]] = []
    pos = 0
    end = len(buf)
    while pos < end:
        opcode = _SIMPLE_FIRST.get(buf[pos])
        if opcode is None:
            return frames, pos, True
        if end - pos < 2:
            return frames, pos, False
        second = buf[pos + 1]
        if not second & 0x80:
            return frames, pos, True  # unmasked: wsproto refuses it (1002)
        length = second & 0x7F
        if length < 126:
            start = pos + 6
        elif opcode >= PING:
            return frames, pos, True  # a control frame over 125 bytes: wsproto refuses it
        elif length == 126:
            if end - pos < 4:
                return frames, pos, False
            length = (buf[pos + 2] << 8) | buf[pos + 3]
            if length < 126:
                return frames, pos, True  # not the shortest form: wsproto refuses it
            start = pos + 8
        else:
            if end - pos < 10:
                return frames, pos, False
            length = _from_bytes(buf[pos + 2:pos + 10], "big")
            if length < 65536 or length >> 63:
                return frames, pos, True  # not the shortest form, or the top bit set
            start = pos + 14
        if length > max_size:
            return frames, pos, True
        stop = start + length
        if stop > end:
            # Incomplete: wait for the rest, unless it is large (wsproto
            # gathers a long frame without copying it again per read), or
            # text already not UTF-8 (wsproto fails the connection as soon
            # as it sees that, before the frame is whole).
            if stop - pos > HOLD_MAX:
                return frames, pos, True
            if opcode == TEXT and end > start:
                try:
                    _decoder().decode(_unmask(buf, start, end), False)
                except UnicodeDecodeError:
                    return frames, pos, True
            return frames, pos, False
        if length:  # (_unmask, spelt out: once per message)
            key = (buf[start - 4:start] * ((length + 3) >> 2))[:length]
            payload = (_from_bytes(buf[start:stop], "little") ^ _from_bytes(key, "little")).to_bytes(length, "little")
        else:
            payload = b""
        if opcode == TEXT:
            try:
                payload = payload.decode("utf-8")
            except UnicodeDecodeError:
                return frames, pos, True  # wsproto closes with 1007
        frames.append((opcode, payload))
        pos = stop
    return frames, pos, False


def _unmask(buf: bytes, start: int, stop: int) -> bytes:
    """``buf[start:stop]`` unmasked with the key in the four bytes before it."""
    length = stop - start
    key = (buf[start - 4:start] * ((length + 3) >> 2))[:length]
    return (_from_bytes(buf[start:stop], "little") ^ _from_bytes(key, "little")).to_bytes(length, "little")


def frame(opcode: int, payload: bytes) -> bytes:
    """One whole, unmasked frame (a server's), as wsproto frames it."""
    length = len(payload)
    if length < 126:
        return bytes((0x80 | opcode, length)) + payload
    if length < 65536:
        return bytes((0x80 | opcode, 126)) + length.to_bytes(2, "big") + payload
    return bytes((0x80 | opcode, 127)) + length.to_bytes(8, "big") + payload
