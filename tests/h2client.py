"""A raw HTTP/2 client for tests: frames written by hand (hyperframe, hpack),
so a test can send what no well-behaved client would, and read back the
server's frames one by one, each read bounded in time."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterable

import hpack
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class RawH2:
    """One connection: ``send`` frames, ``read_until`` a frame matches."""

    def __init__(self, port: int, *, host: str = "127.0.0.1", context: ssl.SSLContext | None = None,
                 preface: bool = True, settings: dict[int, int] | None = None, timeout: float = 5.0) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 24
        self.buffer = b""
        self.closed = False  # the server closed (end of file read)
        self.send_failed = False  # a write failed: the server is gone or going
        self.frames: list[Frame] = []  # every frame received, in order
        if preface:
            self.sock.sendall(PREFACE)
            frame = SettingsFrame(0)
            frame.settings = dict(settings or {})
            self.send(frame)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> RawH2:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------

    def send(self, *frames: Frame) -> None:
        self.sendall(b"".join(f.serialize() for f in frames))

    def sendall(self, data: bytes) -> bool:
        """False when the server has closed the connection meanwhile."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self.send_failed = True
            return False

    def block(self, headers: Iterable[tuple[str | bytes, str | bytes]]) -> bytes:
        return self.encoder.encode(list(headers))

    def headers_frame(self, stream_id: int, headers: Iterable[tuple[str | bytes, str | bytes]], *,
                      end_stream: bool = True, end_headers: bool = True) -> HeadersFrame:
        frame = HeadersFrame(stream_id)
        frame.data = self.block(headers)
        if end_stream:
            frame.flags.add("END_STREAM")
        if end_headers:
            frame.flags.add("END_HEADERS")
        return frame

    def request(self, stream_id: int, path: str = "/", method: str = "GET", *,
                extra: Iterable[tuple[str, str]] = (), end_stream: bool = True) -> None:
        self.send(self.headers_frame(stream_id, request_headers(path, method, extra), end_stream=end_stream))

    def data(self, stream_id: int, data: bytes, *, end_stream: bool = False) -> None:
        frame = DataFrame(stream_id, data=data)
        if end_stream:
            frame.flags.add("END_STREAM")
        self.send(frame)

    def reset(self, stream_id: int, code: int = 8) -> None:
        self.send(RstStreamFrame(stream_id, error_code=code))

    def window_update(self, stream_id: int, increment: int) -> None:
        self.send(WindowUpdateFrame(stream_id, window_increment=increment))

    def ack_settings(self) -> None:
        frame = SettingsFrame(0)
        frame.flags.add("ACK")
        self.send(frame)

    # -- reading ------------------------------------------------------------------------

    def read_frame(self, deadline: float) -> Frame | None:
        """The next frame, or None when the server closed or time ran out."""
        while True:
            if len(self.buffer) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(self.buffer[:9]))
                if len(self.buffer) >= 9 + length:
                    frame.parse_body(memoryview(self.buffer[9:9 + length]))
                    self.buffer = self.buffer[9 + length:]
                    if isinstance(frame, (HeadersFrame, ContinuationFrame)) and "END_HEADERS" in frame.flags:
                        frame.decoded = self.decoder.decode(frame.data, raw=True)  # type: ignore[attr-defined]
                    self.frames.append(frame)
                    return frame
            if self.closed:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(min(left, 0.5))
            try:
                chunk = self.sock.recv(65536)
            except (TimeoutError, ssl.SSLWantReadError):
                continue
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
            self.buffer += chunk

    def read_until(self, match: Callable[[Frame], bool], timeout: float = 5.0) -> Frame | None:
        deadline = time.monotonic() + timeout
        while True:
            frame = self.read_frame(deadline)
            if frame is None or match(frame):
                return frame

    def goaway(self, timeout: float = 5.0) -> GoAwayFrame | None:
        frame = self.read_until(lambda f: isinstance(f, GoAwayFrame), timeout)
        return frame  # type: ignore[return-value]

    def wait_closed(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.read_frame(deadline)
        return self.closed

    def response(self, stream_id: int, timeout: float = 5.0) -> tuple[dict[bytes, bytes], bytes, Frame | None]:
        """The response on a stream: its headers, its body, and the frame
        that ended it (END_STREAM DATA/HEADERS, RST_STREAM, GOAWAY or None)."""
        headers: dict[bytes, bytes] = {}
        body = b""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.read_frame(deadline)
            if frame is None or isinstance(frame, GoAwayFrame):
                return headers, body, frame
            if frame.stream_id != stream_id:
                continue
            if isinstance(frame, HeadersFrame):
                headers.update(dict(frame.decoded))  # type: ignore[attr-defined]
            elif isinstance(frame, DataFrame):
                body += frame.data
                if frame.data:
                    self.window_update(0, len(frame.data))
                    self.window_update(stream_id, len(frame.data))
            elif isinstance(frame, RstStreamFrame):
                return headers, body, frame
            if "END_STREAM" in frame.flags:
                return headers, body, frame


def request_headers(path: str = "/", method: str = "GET",
                    extra: Iterable[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    return [(":method", method), (":scheme", "http"), (":authority", "localhost"), (":path", path), *extra]
