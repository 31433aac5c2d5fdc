"""Coverage-guided fuzzing of pounce's HTTP/2 layer with atheris.

Each input is the frames one client connection sends after the HTTP/2
preface (first byte: the read size), fed in-process through
``fuzz/harness.py`` to :class:`HttpProtocol`, which hands the connection to
HTTP/2 on seeing the preface; pounce, h2, hpack and hyperframe are
instrumented for coverage. The harness's invariants hold as for HTTP/1.1:
no exception escapes, nothing is logged as an error, no app task or timer
outlives the connection.

    .venv/bin/python fuzz/fuzz_h2.py -max_total_time=300 /tmp/fuzz-h2
    .venv/bin/python fuzz/fuzz_h2.py crash-1234...     # replay one input

The seed corpus (requests made by an h2 client: GETs, bodies, trailers,
resets, pings, priority, window updates, continuation, an extended CONNECT
WebSocket) is written into the corpus directory given, when it is empty.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent / "tests")]

with atheris.instrument_imports(include=["pounce", "h2", "hpack", "hyperframe"]):
    import h2.config
    import h2.connection
    from harness import Driver, split_input

    import pounce.core.protocol.http2  # noqa: F401
    import pounce.core.transport.http2  # noqa: F401

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _client() -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    return conn


def _get(path: bytes = b"/", method: bytes = b"GET", extra: list[tuple[bytes, bytes]] | None = None
         ) -> list[tuple[bytes, bytes]]:
    return [(b":method", method), (b":scheme", b"http"), (b":authority", b"x"), (b":path", path), *(extra or [])]


def seeds() -> list[bytes]:
    out = []
    c = _client()
    c.send_headers(1, _get(), end_stream=True)
    out.append(c.data_to_send())
    c = _client()
    c.send_headers(1, _get(b"/up", b"POST", [(b"content-length", b"5")]))
    c.send_data(1, b"hello", end_stream=True)
    c.send_headers(3, _get(b"/stream", extra=[(b"te", b"trailers")]), end_stream=True)
    out.append(c.data_to_send())
    c = _client()
    c.send_headers(1, _get(b"/t", b"POST"))
    c.send_data(1, b"abc")
    c.send_headers(1, [(b"x-trailer", b"1")], end_stream=True)
    c.ping(b"12345678")
    out.append(c.data_to_send())
    c = _client()
    c.send_headers(1, _get(), end_stream=True)
    c.reset_stream(1, 8)
    c.send_headers(3, _get(extra=[(b"cookie", b"a=1"), (b"cookie", b"b=2")]), end_stream=True,
                   priority_weight=200, priority_depends_on=0)
    c.increment_flow_control_window(1000)
    c.update_settings({4: 1000})
    out.append(c.data_to_send())
    c = _client()
    c.send_headers(1, _get(b"/chat", b"CONNECT", [(b":protocol", b"websocket"), (b"sec-websocket-version", b"13")]))
    c.send_data(1, b"\x81\x85\x00\x00\x00\x00hello")
    out.append(c.data_to_send())
    c = _client()
    c.send_headers(1, _get(b"/big", extra=[(b"x-long", b"v" * 20000)]), end_stream=True)  # CONTINUATION
    c.close_connection()
    out.append(c.data_to_send())
    return [data[len(PREFACE):] for data in out]


def seed(corpus_dir: Path) -> None:
    if not corpus_dir.is_dir() or any(corpus_dir.iterdir()):
        return
    for i, data in enumerate(seeds()):
        for mode in (0, 1, 9):
            (corpus_dir / f"seed-{i:03d}-{mode}").write_bytes(bytes([mode]) + data)


driver = Driver(http_max_request_body_size=4096, http2_max_header_list_size=8192)


def test_one_input(data: bytes) -> None:
    payload, chunk = split_input(data)
    driver.drive(PREFACE + payload, chunk)


def main() -> None:
    dirs = [Path(a) for a in sys.argv[1:] if not a.startswith("-") and not os.path.isfile(a)]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
        seed(d)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
