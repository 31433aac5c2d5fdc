"""The cost of one request on pounce's HTTP/1.1 hot path, in units that do
not depend on what else the machine is doing.

wrk figures on a shared two-core machine move with everyone else's load;
the number of Python calls a request makes, and the machine instructions it
executes, do not. This driver feeds keep-alive requests through a real
:class:`~pounce.core.transport.http.HttpProtocol` (the worker's context and
plugins set up as ``pounce`` sets them up, the benchmark's app from
``apps.py``) over an in-memory transport, one request per read as wrk's
connections send them, on a real event loop, and reports:

- ``--calls``: Python function calls (and C calls) per request, by function,
  counted by cProfile (exact counts; its times are only shares);
- ``--instructions``: instructions per request under
  ``valgrind --tool=callgrind``, as the difference between a run of ``2n``
  and one of ``n`` requests divided by ``n`` (start-up cancels out), with
  the C functions that executed them;
- ``--time``: CPU microseconds per request (a sanity check; noisy here).

Scenarios: ``hello`` (``GET /``, 13 bytes), ``post`` (64 KiB POST read in
full), ``stream`` (1 MiB in 16 chunks of 64 KiB), ``ws`` (a 16-byte text
message echoed on an open WebSocket), and ``null``, a bare
asyncio protocol answering a fixed response through the same driver: the
floor of the driver and the loop, to subtract from the others.

Usage (inside the project's venv)::

    python benchmarks/hotpath.py --calls [--scenario hello] [--top 30]
    python benchmarks/hotpath.py --instructions [--scenario hello,post,stream,null]
    python benchmarks/hotpath.py --time
    python benchmarks/hotpath.py --instructions --option request_id_enabled=true   # a plugin's cost

The in-memory transport stands in for the socket only here, to count; every
user-visible behaviour is tested over real sockets in tests/.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

HELLO = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"
STREAM = b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"
POST_BODY = b"x" * (64 * 1024)
POST = (b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Length: 65536\r\n"
        b"Content-Type: application/octet-stream\r\n\r\n" + POST_BODY)
FIXED = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\r\nHello, world!"
WS_HANDSHAKE = (b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
_MASK = b"\x12\x34\x56\x78"
# A 16-byte text message from a client (masked), as the bench's echo client sends it.
WS_FRAME = bytes([0x81, 0x80 | 16]) + _MASK + bytes(b ^ _MASK[i % 4] for i, b in enumerate(b"0123456789abcdef"))

# What each request arrives as: the reads of one request (wrk writes a whole
# request at once; 64 KiB of POST arrives in at most a few reads).
SCENARIOS: dict[str, list[bytes]] = {
    "hello": [HELLO],
    "post": [POST],
    "stream": [STREAM],
    "null": [HELLO],
    "ws": [WS_FRAME],  # after the handshake: one echo per round
}


class Batch:
    """The responses still awaited in one round of requests."""

    __slots__ = ("remaining",)

    def __init__(self) -> None:
        self.remaining = 0


class MemoryTransport(asyncio.Transport):
    """A transport that keeps nothing: it counts the bytes written and ticks
    the batch off once a whole response (``expect`` bytes) is out."""

    def __init__(self, batch: Batch) -> None:
        super().__init__()
        self.batch = batch
        self.protocol: Any = None
        self.written = 0
        self.expect = 0
        self.closing = False
        self.reading = True
        self.captured = bytearray()
        self.capture = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data: Any) -> None:
        if self.capture:
            self.captured += data
        self.written += len(data)
        if self.expect and self.written >= self.expect:
            self.written -= self.expect
            self.batch.remaining -= 1

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def can_write_eof(self) -> bool:
        return False

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    def get_write_buffer_size(self) -> int:
        return 0


class NullProtocol(asyncio.BufferedProtocol):
    """A fixed answer to every read: what the driver costs alone."""

    def __init__(self) -> None:
        self.buffer = memoryview(bytearray(256 * 1024))
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.buffer[:nbytes].tobytes()
        self.transport.write(FIXED)


def options_from_env() -> dict[str, Any]:
    """``--option`` overrides (``compression_enabled=true``), passed to the
    callgrind runs through the environment."""
    out: dict[str, Any] = {}
    for item in filter(None, os.environ.get("HOTPATH_OPTIONS", "").split(",")):
        key, _, text = item.partition("=")
        value: Any = {"true": True, "false": False}.get(text.lower(), text)
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        out[key.strip()] = value
    return out


def make_factory(scenario: str, loop: asyncio.AbstractEventLoop) -> Any:
    """A protocol factory for one worker, built the way a pounce worker
    builds its context (config, plugins, wrapped app, observers)."""
    if scenario == "null":
        return NullProtocol
    import apps

    from pounce.core.config import ServerConfig
    from pounce.core.plugins import build_plugin_manager
    from pounce.core.transport.connection import reading_for
    from pounce.core.transport.context import WorkerContext
    from pounce.core.transport.http import HttpProtocol

    config = ServerConfig.load(None, env={}, discover=False, logging_access_log=False, lifespan="off",
                               logging_level="warning", **options_from_env())
    manager = build_plugin_manager()
    app = manager.wrap_app(config, apps.app)
    ctx = WorkerContext(config, app, observers=manager.request_observers(config))
    ctx.loop = loop
    protocol = reading_for(HttpProtocol, loop)  # (as the worker picks it)
    return lambda: protocol(ctx)


class Driver:
    """``conns`` keep-alive connections on one loop. A round gives each
    connection one request (each read as a socket read would deliver it),
    then runs the loop until every response is out: what one loop iteration
    over ``conns`` ready sockets does under wrk. The reads themselves (the
    selector's part) are the same for any server and are not counted; loop
    iterations the server needs beyond them are."""

    def __init__(self, scenario: str, loop_name: str = "asyncio", conns: int = 64) -> None:
        self.scenario = scenario
        self.reads = SCENARIOS[scenario]
        self.conns = conns
        if loop_name == "uvloop":
            import uvloop  # type: ignore[import-not-found]

            self.loop = uvloop.new_event_loop()
        else:
            self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.batch = Batch()
        factory = make_factory(scenario, self.loop)
        self.protocols = []
        self.transports = []
        for _ in range(conns):
            transport = MemoryTransport(self.batch)
            protocol = factory()
            transport.protocol = protocol
            protocol.connection_made(transport)
            self.protocols.append(protocol)
            self.transports.append(transport)
        if scenario == "ws":
            # Upgrade every connection, then one echoed frame is one response.
            for transport in self.transports:
                transport.capture = True
                self._feed(transport, [WS_HANDSHAKE])
            self.loop.run_until_complete(self._settle())
            self.response = bytes(self.transports[0].captured)
            size = len(WS_FRAME) - 4  # the echo comes back unmasked
        else:
            # One request to learn the response size (the Date header keeps its length).
            first = self.transports[0]
            first.capture = True
            self._feed(first, self.reads)
            self.loop.run_until_complete(self._settle())
            self.response = size = bytes(first.captured)  # type: ignore[assignment]
            size = len(self.response)
        for transport in self.transports:
            transport.capture = False
            transport.expect = size
            transport.written = 0
        if isinstance(self.loop, asyncio.BaseEventLoop):
            self._turn = self._run_once  # one iteration of asyncio's loop
        else:
            self._turn = self._run_briefly

    async def _settle(self) -> None:
        for _ in range(100):
            await asyncio.sleep(0)

    @staticmethod
    def _feed(transport: MemoryTransport, reads: list[bytes]) -> None:
        protocol = transport.protocol  # (the WebSocket protocol after an upgrade)
        if isinstance(protocol, asyncio.Protocol):
            # Read as uvloop reads a protocol that is a plain one as well
            # (see reading_for): the bytes, made in C, to data_received.
            for data in reads:
                protocol.data_received(data)
            return
        for data in reads:
            buf = protocol.get_buffer(len(data))
            buf[:len(data)] = data
            protocol.buffer_updated(len(data))

    def _run_once(self) -> None:
        loop = self.loop
        if not loop._ready:  # type: ignore[attr-defined]
            raise SystemExit(f"{self.scenario}: responses awaited but nothing to run")
        loop._run_once()  # type: ignore[attr-defined]

    def _run_briefly(self) -> None:
        self.loop.run_until_complete(asyncio.sleep(0))

    def run(self, rounds: int) -> None:
        batch = self.batch
        feed = self._feed
        transports = self.transports
        reads = self.reads
        turn = self._turn
        conns = self.conns
        loop = self.loop
        stepping = turn == self._run_once
        if stepping:
            # What run_forever sets up, so that the loop counts as running
            # (3.12's eager tasks start eagerly only on a running loop).
            loop._thread_id = threading.get_ident()  # type: ignore[attr-defined]
            asyncio.events._set_running_loop(loop)
        if stepping:
            # asyncio's selector puts each readable transport's one read
            # handle on the ready queue and runs them in turn: a read sees
            # the other connections' reads still waiting, as under wrk.
            handles = [asyncio.Handle(feed, (transport, reads), loop, None) for transport in transports]
            ready = loop._ready  # type: ignore[attr-defined]
        try:
            for _ in range(rounds):
                batch.remaining = conns
                if stepping:
                    ready.extend(handles)
                else:
                    for transport in transports:
                        feed(transport, reads)
                while batch.remaining > 0:
                    turn()
        finally:
            if stepping:
                loop._thread_id = None  # type: ignore[attr-defined]
                asyncio.events._set_running_loop(None)

    def check(self) -> None:
        expected = b"HTTP/1.1 101 " if self.scenario == "ws" else b"HTTP/1.1 200 "
        if not self.response.startswith(expected):
            raise SystemExit(f"{self.scenario}: unexpected response {self.response[:80]!r}")


# -- calls ------------------------------------------------------------------------


def _where(key: tuple[str, int, str]) -> str:
    path, line, func = key
    if path == "~":
        return func  # a builtin: "<method 'write' of ...>"
    parts = Path(path).parts
    return f"{func} ({'/'.join(parts[-2:])}:{line})"


def calls_main(args: argparse.Namespace) -> None:
    for scenario in args.scenario.split(","):
        driver = Driver(scenario, args.loop, args.conns)
        driver.check()
        driver.run(max(1, 200 // args.conns))  # warm caches (header names, method objects)
        rounds = max(1, args.n // args.conns)
        n = rounds * args.conns
        prof = cProfile.Profile()
        prof.enable()
        driver.run(rounds)
        prof.disable()
        stats = pstats.Stats(prof)
        raw = stats.stats  # type: ignore[attr-defined]
        total = sum(nc for (_cc, nc, _tt, _ct, _callers) in raw.values())
        py = sum(nc for key, (_cc, nc, _tt, _ct, _callers) in raw.items() if key[0] != "~")
        tot_time = sum(tt for (_cc, _nc, tt, _ct, _callers) in raw.values()) or 1.0
        print(f"{scenario}: {py / n:.1f} Python calls + {(total - py) / n:.1f} C calls per request "
              f"({total / n:.1f} in all; driver included: see the null scenario)")
        rows = sorted(raw.items(), key=lambda kv: (-kv[1][1], -kv[1][2]))
        print(f"  {'calls/req':>9} {'self %':>7}  function")
        for key, (_cc, nc, tt, _ct, _callers) in rows[:args.top]:
            print(f"  {nc / n:>9.2f} {100 * tt / tot_time:>6.1f}%  {_where(key)}")
        print()


# -- instructions -----------------------------------------------------------------

_TOTALS = re.compile(rb"^(?:summary|totals):\s+(\d+)", re.M)


def _callgrind(scenario: str, n: int, args: argparse.Namespace, out: Path) -> int:
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no",
           sys.executable, str(Path(__file__).resolve()), "--run", scenario, "-n", str(n),
           "--loop", args.loop, "--conns", str(args.conns)]
    env = dict(os.environ, PYTHONHASHSEED="0")
    proc = subprocess.run(cmd, capture_output=True, env=env, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"callgrind failed: {proc.stderr.decode(errors='replace')[-2000:]}")
    match = _TOTALS.search(out.read_bytes())
    if match is None:
        raise SystemExit(f"no totals in {out}")
    return int(match.group(1))


def _by_function(path: Path) -> dict[str, int]:
    """Self instructions per C function, from callgrind_annotate."""
    proc = subprocess.run(["callgrind_annotate", "--threshold=100", "--inclusive=no", str(path)],
                          capture_output=True, text=True, timeout=600)
    out: dict[str, int] = {}
    for line in proc.stdout.splitlines():
        match = re.match(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*)$", line)
        if not match:
            continue
        name = match.group(2).strip()
        if name.startswith(("PROGRAM TOTALS", "Ir ")) or "file:function" in name:
            continue
        name = re.sub(r" \[[^\]]*\]$", "", name)  # the object file
        name = name.split(":", 1)[1] if ":" in name else name
        out[name] = out.get(name, 0) + int(match.group(1).replace(",", ""))
    return out


def instructions_main(args: argparse.Namespace) -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in args.scenario.split(","):
            n = max(1, args.n // args.conns) * args.conns
            small, big = Path(tmp) / f"{scenario}-1.out", Path(tmp) / f"{scenario}-2.out"
            ir1 = _callgrind(scenario, n, args, small)
            ir2 = _callgrind(scenario, 2 * n, args, big)
            per = (ir2 - ir1) / n
            results[scenario] = round(per)
            print(f"{scenario}: {per:,.0f} instructions per request "
                  f"({ir1:,} for {n}, {ir2:,} for {2 * n} requests)", flush=True)
            if args.top:
                a, b = _by_function(small), _by_function(big)
                diff = sorted(((b.get(k, 0) - a.get(k, 0)) / n, k) for k in set(a) | set(b))
                diff.reverse()
                print(f"  {'Ir/req':>8} {'share':>6}  C function (self)")
                for cost, name in diff[:args.top]:
                    print(f"  {cost:>8,.0f} {100 * cost / per:>5.1f}%  {name}")
                print(flush=True)
    if args.json:
        print(json.dumps(results))


# -- time ------------------------------------------------------------------------------


def time_main(args: argparse.Namespace) -> None:
    for scenario in args.scenario.split(","):
        driver = Driver(scenario, args.loop, args.conns)
        driver.check()
        driver.run(max(1, 200 // args.conns))
        rounds = max(1, args.n // args.conns)
        best = float("inf")
        for _ in range(5):
            start = time.process_time()
            driver.run(rounds)
            best = min(best, time.process_time() - start)
        n = rounds * args.conns
        print(f"{scenario}: {1e6 * best / n:.2f} us CPU per request (best of 5 x {n})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--calls", action="store_true", help="Python calls per request, by function (default)")
    mode.add_argument("--instructions", action="store_true", help="instructions per request under callgrind")
    mode.add_argument("--time", action="store_true", help="CPU time per request")
    mode.add_argument("--run", metavar="SCENARIO", help=argparse.SUPPRESS)  # one callgrind run
    parser.add_argument("--scenario", default="hello", help=f"comma-separated, from {', '.join(SCENARIOS)}")
    parser.add_argument("-n", type=int, default=0, help="requests (default: 20000 calls/time, 2000 instructions)")
    parser.add_argument("--loop", default="asyncio", choices=("asyncio", "uvloop"))
    parser.add_argument("--conns", type=int, default=64, help="connections served per loop turn (wrk -c)")
    parser.add_argument("--top", type=int, default=25, help="rows by function (0: none)")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="a config override, e.g. compression_enabled=true (repeatable): a plugin's cost")
    args = parser.parse_args(argv)
    if args.option:
        os.environ["HOTPATH_OPTIONS"] = ",".join(args.option)
    if args.run:
        driver = Driver(args.run, args.loop, args.conns)
        driver.check()
        driver.run(max(1, args.n // args.conns))
        return 0
    if args.instructions:
        args.n = args.n or 2000
        instructions_main(args)
    elif args.time:
        args.n = args.n or 20000
        time_main(args)
    else:
        args.n = args.n or 20000
        calls_main(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
