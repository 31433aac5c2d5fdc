"""WebSocket echo throughput: pounce vs uvicorn (--ws wsproto), in one run.

    .venv/bin/python benchmarks/ws_echo.py [--conns 32] [--size 16] [--duration 5] [--rounds 3]

Both servers serve the same app (the bundled demo's ``/ws`` echo) as
subprocesses with access logs and server pings off, both on the stdlib asyncio
loop (``--loop asyncio``); uvicorn gets ``--http h11 --ws wsproto`` so both
sides run the same protocol libraries. Rounds alternate between the servers so drift on a shared machine
hits both alike; the report gives each round and the medians.

The client is a lean asyncio protocol, not a WebSocket library: every
connection keeps exactly one masked 16-byte text frame in flight and sends the
next as soon as the whole echo is back. It offers no extensions, so neither
server compresses. Messages per second counts completed round trips.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
APP = "pounce.demo:app"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(name: str, port: int) -> list[str]:
    if name == "pounce":
        return [sys.executable, "-m", "pounce", APP, "--host", "127.0.0.1", "--port", str(port),
                "--loop", "asyncio", "--no-access-log", "--log-level", "warning", "--lifespan", "off",
                "--ws-ping-interval", "0"]
    return [sys.executable, "-m", "uvicorn", APP, "--host", "127.0.0.1", "--port", str(port),
            "--http", "h11", "--loop", "asyncio", "--ws", "wsproto",
            "--no-access-log", "--log-level", "warning", "--lifespan", "off",
            "--ws-ping-interval", "0"]


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("server did not start listening")


class EchoConnection(asyncio.Protocol):
    """One WebSocket: handshake, then one message in flight at a time."""

    def __init__(self, handshake: bytes, frame: bytes, echo_size: int, stats: dict[str, Any]) -> None:
        self.handshake = handshake
        self.frame = frame
        self.echo_size = echo_size  # bytes of the server's unmasked echo frame
        self.stats = stats
        self.buffer = b""
        self.open = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.write(self.handshake)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.open:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(RuntimeError(head.split(b"\r\n")[0].decode()))
                return
            self.open = True
            self.buffer = rest
            self.ready.set_result(None)
            self.transport.write(self.frame)  # type: ignore[union-attr]
            return
        size = self.echo_size
        while len(self.buffer) >= size:
            self.buffer = self.buffer[size:]
            if self.stats["counting"]:
                self.stats["msgs"] += 1
            if not self.stats["stop"]:
                self.transport.write(self.frame)  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed during the handshake"))


async def run_client(port: int, conns: int, size: int, duration: float, warmup: float) -> float:
    loop = asyncio.get_running_loop()
    key = base64.b64encode(os.urandom(16)).decode()
    handshake = (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n").encode()
    payload = (b"0123456789abcdef" * (size // 16 + 1))[:size]
    assert size < 126, "the lean client frames short messages only"
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    frame = bytes([0x81, 0x80 | size]) + mask + masked
    stats: dict[str, Any] = {"msgs": 0, "counting": False, "stop": False}
    protocols = []
    for _ in range(conns):
        _, proto = await loop.create_connection(
            lambda: EchoConnection(handshake, frame, 2 + size, stats), "127.0.0.1", port)
        protocols.append(proto)
    await asyncio.gather(*(p.ready for p in protocols))
    await asyncio.sleep(warmup)
    stats["counting"] = True
    began = time.perf_counter()
    await asyncio.sleep(duration)
    stats["counting"] = False
    elapsed = time.perf_counter() - began
    stats["stop"] = True
    for proto in protocols:
        proto.transport.close()  # type: ignore[union-attr]
    await asyncio.sleep(0.1)
    return stats["msgs"] / elapsed


def measure(name: str, args: argparse.Namespace) -> float:
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.Popen(server_command(name, port), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        wait_listening(port, proc)
        return asyncio.run(run_client(port, args.conns, args.size, args.duration, args.warmup))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conns", type=int, default=32)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)

    results: dict[str, list[float]] = {"pounce": [], "uvicorn": []}
    for round_no in range(1, args.rounds + 1):
        order = ("pounce", "uvicorn") if round_no % 2 else ("uvicorn", "pounce")
        for name in order:
            rate = measure(name, args)
            results[name].append(rate)
            print(f"round {round_no}: {name:8s} {rate:10,.0f} msg/s", flush=True)
    p = statistics.median(results["pounce"])
    u = statistics.median(results["uvicorn"])
    print(f"\nWebSocket echo, {args.size} B, {args.conns} connections, {args.duration:g}s x {args.rounds} rounds")
    print(f"pounce                 median {p:10,.0f} msg/s")
    print(f"uvicorn --ws wsproto   median {u:10,.0f} msg/s")
    # Each round's two runs are neighbours in time, so their ratio shrugs off
    # load that shifts between rounds on a shared machine.
    paired = statistics.median(a / b for a, b in zip(results["pounce"], results["uvicorn"], strict=True))
    print(f"pounce / uvicorn       {p / u:.2f}x (ratio of medians), {paired:.2f}x (median of per-round ratios)")
    if args.json:
        import uvicorn
        import wsproto

        Path(args.json).write_text(json.dumps({
            "conns": args.conns, "size": args.size, "duration": args.duration, "rounds": args.rounds,
            "pounce": results["pounce"], "uvicorn": results["uvicorn"],
            "median": {"pounce": p, "uvicorn": u}, "ratio": p / u, "paired_ratio": paired,
            "python": platform.python_version(), "uvicorn_version": uvicorn.__version__,
            "wsproto_version": getattr(wsproto, "__version__", "?"), "cpus": os.cpu_count(),
        }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
