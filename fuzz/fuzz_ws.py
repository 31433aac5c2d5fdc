"""Coverage-guided fuzzing of pounce's WebSocket layer with atheris.

Each input becomes one connection: a valid upgrade request (with or without
a permessage-deflate offer), then client frames. Half the inputs are raw
bytes after the handshake; the other half are decoded by
``FuzzedDataProvider`` into a sequence of well-masked frames with fuzzed
opcode, FIN and RSV bits, lengths and payloads (compressed or not), so the
fuzzer gets past the framing layer into fragmentation, control frames, UTF-8
checks, size limits and deflate. The server side runs in-process through
``fuzz/harness.py`` with pounce, wsproto and h11 instrumented for coverage.
Besides the harness invariants, the server's output must be a valid 101
answer followed by frames a wsproto client parses without error.

    .venv/bin/python fuzz/fuzz_ws.py -max_total_time=300 /tmp/fuzz-ws
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import sys
import zlib
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

with atheris.instrument_imports(include=["pounce", "wsproto", "h11"]):
    from harness import Driver, Finding
    from wsproto.extensions import PerMessageDeflate
    from wsproto.frame_protocol import FrameProtocol, ParseFailed

    import pounce.core.asgi.websocket  # noqa: F401
    import pounce.core.transport.websocket  # noqa: F401

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def handshake(deflate: bool, path: bytes = b"/ws") -> bytes:
    extra = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" if deflate else b""
    return (b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n")


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bytes | None = b"abcd",
          length_form: int = 0) -> bytes:
    """One client frame; ``length_form`` forces the 16- or 64-bit length form."""
    first = (0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 15)
    n = len(payload)
    masked = 0x80 if mask is not None else 0
    if n < 126 and length_form == 0:
        head = bytes([first, masked | n])
    elif n < 65536 and length_form != 2:
        head = bytes([first, masked | 126]) + struct.pack("!H", n)
    else:
        head = bytes([first, masked | 127]) + struct.pack("!Q", n)
    if mask is None:
        return head + payload
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4] if out.endswith(b"\x00\x00\xff\xff") else out


def frames_from(fdp: atheris.FuzzedDataProvider, use_deflate: bool) -> bytes:
    out = []
    for _ in range(fdp.ConsumeIntInRange(0, 12)):
        opcode = fdp.PickValueInList([0, 1, 2, 8, 9, 10, 3, 11])
        fin = fdp.ConsumeBool()
        rsv = fdp.PickValueInList([0, 0, 0, 4, 2, 1])
        payload = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 300))
        if fdp.ConsumeBool():
            payload = payload.decode("latin-1").encode("utf-8")  # mostly valid UTF-8 text
        if use_deflate and rsv & 4 and fdp.ConsumeBool():
            payload = deflate(payload)
        if opcode == 8 and fdp.ConsumeBool():
            payload = struct.pack("!H", fdp.PickValueInList([1000, 1001, 1002, 1005, 1006, 1015, 999, 3000,
                                                              4999, 5000, 65535])) + payload[:100]
        mask = None if fdp.ConsumeIntInRange(0, 15) == 0 else fdp.ConsumeBytes(4).ljust(4, b"\0")
        out.append(frame(opcode, payload, fin=fin, rsv=rsv, mask=mask,
                         length_form=fdp.ConsumeIntInRange(0, 2) if fdp.ConsumeBool() else 0))
    return b"".join(out)


driver = Driver(websocket_max_message_size=1024, websocket_ping_interval=0)


ACCEPT = base64.b64encode(hashlib.sha1(KEY + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())


def check_output(out: bytes, deflate_offered: bool) -> None:
    """The server's bytes must be a valid 101 answer for our key followed by
    frames that wsproto's client-side frame parser reads without error."""
    head, sep, rest = out.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.1 101 "):
        raise Finding(f"no 101 answer: {out[:120]!r}")
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if headers.get(b"sec-websocket-accept") != ACCEPT:
        raise Finding(f"wrong Sec-WebSocket-Accept: {headers.get(b'sec-websocket-accept')!r}")
    extensions = []
    agreed = headers.get(b"sec-websocket-extensions")
    if agreed is not None:
        if not deflate_offered:
            raise Finding("extension agreed that was never offered")
        ext = PerMessageDeflate()
        ext.finalize(agreed.decode("ascii"))
        extensions.append(ext)
    parser = FrameProtocol(client=True, extensions=extensions)
    parser.receive_bytes(rest)
    try:
        for _ in parser.received_frames():
            pass
    except ParseFailed as exc:
        raise Finding(f"server sent a frame a client cannot parse: {exc}") from None


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 255)
    use_deflate = bool(mode & 2)
    chunk = fdp.ConsumeIntInRange(0, 40)
    if mode & 1:
        body = fdp.ConsumeBytes(fdp.remaining_bytes())
    else:
        body = frames_from(fdp, use_deflate)
    path = b"/deny" if mode & 4 and mode & 8 else b"/ws"
    out = driver.drive(handshake(use_deflate, path) + body, chunk)
    if path == b"/ws":
        check_output(out, use_deflate)
    elif not out.startswith(b"HTTP/1.1 403"):
        raise Finding(f"denied handshake not answered 403: {out[:60]!r}")


def main() -> None:
    for a in sys.argv[1:]:
        if not a.startswith("-") and not os.path.isfile(a):
            Path(a).mkdir(parents=True, exist_ok=True)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
