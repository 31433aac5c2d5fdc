"""A deliberately dumb raw-socket WebSocket client for the tests: it sends the
exact bytes a test asks for (broken handshakes, unmasked or reserved frames,
bad UTF-8) and reads the server's frames back without any validation."""

from __future__ import annotations

import base64
import os
import socket
import struct
import time

KEY = base64.b64encode(b"0123456789abcdef").decode()


def handshake_request(path: str = "/ws", *, key: str | None = KEY, version: str | None = "13",
                      extra: str = "", method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade"]
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True, rsv1: bool = False) -> bytes:
    head = bytearray([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    length = len(payload)
    bit = 0x80 if mask else 0
    if length < 126:
        head.append(bit | length)
    elif length < 65536:
        head.append(bit | 126)
        head += struct.pack("!H", length)
    else:
        head.append(bit | 127)
        head += struct.pack("!Q", length)
    if not mask:
        return bytes(head) + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes(head) + key + masked


def close_frame(code: int, reason: str = "") -> bytes:
    return frame(0x8, struct.pack("!H", code) + reason.encode())


class RawClient:
    """One TCP connection speaking bytes; ``read_*`` methods have deadlines."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""
        self.timeout = timeout

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from the server in time")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def read_head(self) -> tuple[int, dict[str, str], bytes]:
        """Status, headers (lowercase names) of an HTTP response; the body
        when it has a content-length."""
        deadline = time.monotonic() + self.timeout
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill(deadline):
                break
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(rest) < length and self._fill(deadline):
            rest = self.buffer.partition(b"\r\n\r\n")[2]
        self.buffer = rest[length:]
        return status, headers, rest[:length]

    def open(self, path: str = "/ws", **kw: object) -> dict[str, str]:
        self.send(handshake_request(path, **kw))  # type: ignore[arg-type]
        status, headers, _ = self.read_head()
        assert status == 101, (status, headers)
        return headers

    def read_frame(self) -> tuple[int, bytes, bool]:
        """(opcode, payload, fin) of the next server frame."""
        deadline = time.monotonic() + self.timeout
        while True:
            buf = self.buffer
            if len(buf) >= 2:
                length = buf[1] & 0x7F
                offset = 2
                if length == 126 and len(buf) >= 4:
                    length = struct.unpack("!H", buf[2:4])[0]
                    offset = 4
                elif length == 127 and len(buf) >= 10:
                    length = struct.unpack("!Q", buf[2:10])[0]
                    offset = 10
                if length < 126 or offset > 2:
                    if len(buf) >= offset + length:
                        self.buffer = buf[offset + length:]
                        return buf[0] & 0x0F, buf[offset:offset + length], bool(buf[0] & 0x80)
            if not self._fill(deadline):
                raise ConnectionError("connection closed before a whole frame arrived")

    def read_close(self) -> tuple[int, str]:
        """Skip data/ping frames up to the close frame; return its code and reason."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            opcode, payload, _ = self.read_frame()
            if opcode == 0x8:
                if len(payload) < 2:
                    return 1005, ""
                return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")
        raise TimeoutError("no close frame from the server in time")

    def at_eof(self, timeout: float = 5.0) -> bool:
        """True when the server closes the TCP connection within ``timeout``."""
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline):
                pass
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        return True

    def close(self) -> None:
        self.sock.close()
