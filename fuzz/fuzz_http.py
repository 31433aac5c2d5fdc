"""Coverage-guided fuzzing of pounce's HTTP/1.1 layer with atheris.

Each input is one client connection's bytes (first byte: the read size),
fed in-process through ``fuzz/harness.py`` to :class:`HttpProtocol` and the
real h11 connection, with pounce and h11 instrumented for coverage. A broken
invariant (see the harness) or any exception is a crash; libFuzzer saves the
input as ``crash-<sha1>`` and stops.

    .venv/bin/python fuzz/fuzz_http.py -max_total_time=300 /tmp/fuzz-http
    .venv/bin/python fuzz/fuzz_http.py crash-1234...     # replay one input

The seed corpus (``tests/reliability/http_corpus.py`` plus a few valid requests,
pipelined, chunked, proxied and upgrading ones; the harness's peer is
127.0.0.1, trusted for proxy headers by default) is written into the corpus directory
given, when that directory is empty.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent / "tests" / "reliability")]

with atheris.instrument_imports(include=["pounce", "h11"]):
    import h11  # noqa: F401
    from harness import Driver, split_input

    import pounce.core.http11  # noqa: F401

VALID = [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\nGET /stream HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nT: 1\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"GET / HTTP/1.0\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET http://other/p HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1:80, [::1]:8080\r\nX-Forwarded-Proto: https\r\n"
    b"X-Forwarded-Host: h\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nForwarded: for=\"[2001:db8::1]:4711\";proto=https;host=h, for=1.2.3.4\r\n\r\n",
    b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
]


def seed(corpus_dir: Path) -> None:
    if not corpus_dir.is_dir() or any(corpus_dir.iterdir()):
        return
    from http_corpus import CORPUS

    cases = [c.data for c in CORPUS] + VALID
    for i, data in enumerate(cases):
        for mode in (0, 1, 7):
            (corpus_dir / f"seed-{i:03d}-{mode}").write_bytes(bytes([mode]) + data)


driver = Driver(http_max_request_body_size=4096, http_max_incomplete_event_size=2048)


def test_one_input(data: bytes) -> None:
    payload, chunk = split_input(data)
    driver.drive(payload, chunk)


def main() -> None:
    dirs = [Path(a) for a in sys.argv[1:] if not a.startswith("-") and not os.path.isfile(a)]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
        seed(d)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
