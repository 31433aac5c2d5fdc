"""WebSocket on wsproto against a real pounce: the websockets library's client
for well-behaved peers, raw sockets for broken handshakes and frames."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from pounce.demo import app as demo_app
from pounce.testing import wait_for
from tests.helpers import settled
from tests.wsclient import KEY, RawClient, close_frame, frame, handshake_request

# What the apps below saw, for the test to check (apps run in the server thread).
seen: list[Any] = []


def ws_url(srv: Any, path: str = "/ws") -> str:
    return srv.url.replace("http://", "ws://") + path


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))  # type: ignore[arg-type]


def client(url: str, **kw: Any) -> Any:
    kw.setdefault("proxy", None)
    return connect(url, **kw)


@pytest.fixture(autouse=True)
def _clear_seen() -> None:
    seen.clear()


@pytest.fixture
def ws_serve(serve: Any) -> Callable[..., Any]:
    def start(app: Any, **kw: Any) -> Any:
        kw.setdefault("lifespan", "off")
        return serve(app, **kw)

    return start


# -- apps ---------------------------------------------------------------------


async def recorder(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accepts (with the first offered subprotocol and an extra header),
    reports the scope, echoes, records every message and the disconnect."""
    seen.append(("scope", scope))
    seen.append(await receive())
    subprotocols = scope["subprotocols"]
    await send({"type": "websocket.accept", "subprotocol": subprotocols[-1] if subprotocols else None,
                "headers": [(b"x-extra", b"yes")]})
    while True:
        message = await receive()
        seen.append(message)
        if message["type"] == "websocket.disconnect":
            try:
                await send({"type": "websocket.send", "text": "too late"})
            except OSError as exc:
                seen.append(("send-after-disconnect", type(exc).__name__))
            return
        text = message.get("text")
        if text == "scope":
            info = {k: v for k, v in scope.items() if k in ("type", "scheme", "path", "query_string",
                                                            "subprotocols", "http_version", "asgi")}
            info["query_string"] = info["query_string"].decode()
            info["extensions"] = sorted(scope["extensions"])
            await send({"type": "websocket.send", "text": json.dumps(info)})
        elif text is not None and text.startswith("close:"):
            _, code, reason = text.split(":", 2)
            await send({"type": "websocket.close", "code": int(code), "reason": reason})
        elif text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def rejector(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    if scope["path"] == "/deny":
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Bearer")]})
        await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"entry"})
    else:
        await send({"type": "websocket.close"})
    seen.append(await receive())


async def never_reads(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await asyncio.sleep(30)


async def floods(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Sends 64 KiB messages as fast as pounce lets it, counting them."""
    await receive()
    await send({"type": "websocket.accept"})
    seen.append(0)
    chunk = b"x" * 65536
    try:
        for _ in range(2000):
            await send({"type": "websocket.send", "bytes": chunk})
            seen[0] += 1
    except OSError:
        pass


# -- the basics ------------------------------------------------------------------


def test_echo_text_and_bytes_with_the_demo_app(ws_serve: Any) -> None:
    srv = ws_serve(demo_app)

    async def go() -> tuple[Any, Any, int | None]:
        async with client(ws_url(srv)) as ws:
            await ws.send("hello pounce")
            text = await ws.recv()
            await ws.send(b"\x00\xff binary")
            data = await ws.recv()
        return text, data, ws.close_code

    text, data, code = run(go())
    assert text == "hello pounce"
    assert data == b"\x00\xff binary"
    assert code == 1000
    # plain HTTP still works on the same server
    assert httpx.get(srv.url + "/healthz").status_code == 200


def test_scope_subprotocol_and_accept_headers(ws_serve: Any) -> None:
    srv = ws_serve(recorder)

    async def go() -> tuple[Any, str | None, str | None]:
        async with client(ws_url(srv, "/chat?room=1"), subprotocols=["chat.v1", "chat.v2"]) as ws:
            await ws.send("scope")
            info = json.loads(await ws.recv())
            return info, ws.subprotocol, ws.response.headers.get("x-extra")

    info, subprotocol, extra = run(go())
    assert subprotocol == "chat.v2"
    assert extra == "yes"
    assert info["type"] == "websocket"
    assert info["scheme"] == "ws"
    assert info["path"] == "/chat"
    assert info["query_string"] == "room=1"
    assert info["subprotocols"] == ["chat.v1", "chat.v2"]
    assert info["asgi"]["version"] == "3.0"
    assert "websocket.http.response" in info["extensions"]
    assert seen[1] == {"type": "websocket.connect"}


def test_app_close_with_code_and_reason(ws_serve: Any) -> None:
    srv = ws_serve(recorder)

    async def go() -> tuple[int | None, str | None]:
        async with client(ws_url(srv)) as ws:
            await ws.send("close:4001:see you")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code, ws.close_reason

    assert run(go()) == (4001, "see you")
    wait_for(lambda: any(m == ("send-after-disconnect", "ClientDisconnected") for m in seen))
    disconnect = [m for m in seen if isinstance(m, dict) and m["type"] == "websocket.disconnect"]
    assert disconnect[0]["code"] == 4001


def test_peer_close_code_reaches_the_app_and_send_after_raises(ws_serve: Any) -> None:
    srv = ws_serve(recorder)

    async def go() -> None:
        ws = await client(ws_url(srv))
        await ws.send("one")
        assert await ws.recv() == "one"
        await ws.close(code=4002, reason="client leaving")

    run(go())
    wait_for(lambda: any(isinstance(m, tuple) and m[0] == "send-after-disconnect" for m in seen))
    disconnect = [m for m in seen if isinstance(m, dict) and m["type"] == "websocket.disconnect"][0]
    assert disconnect["code"] == 4002
    assert disconnect["reason"] == "client leaving"
    assert ("send-after-disconnect", "ClientDisconnected") in seen


def test_client_that_vanishes_gives_1006(ws_serve: Any) -> None:
    srv = ws_serve(recorder)
    raw = RawClient(srv.port)
    raw.open()
    raw.close()
    wait_for(lambda: any(isinstance(m, dict) and m["type"] == "websocket.disconnect" for m in seen))
    disconnect = [m for m in seen if isinstance(m, dict) and m["type"] == "websocket.disconnect"][0]
    assert disconnect["code"] == 1006


# -- refusing the handshake ------------------------------------------------------------


def test_close_before_accept_is_403(ws_serve: Any) -> None:
    srv = ws_serve(rejector)

    async def go() -> None:
        async with client(ws_url(srv, "/nope")):
            pass

    with pytest.raises(InvalidStatus) as info:
        run(go())
    assert info.value.response.status_code == 403
    wait_for(lambda: bool(seen))
    assert seen[0]["type"] == "websocket.disconnect"


def test_denial_response_extension(ws_serve: Any) -> None:
    srv = ws_serve(rejector)

    async def go() -> None:
        async with client(ws_url(srv, "/deny")):
            pass

    with pytest.raises(InvalidStatus) as info:
        run(go())
    response = info.value.response
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.body == b"no entry"
    # raw, to see the framing on the wire too
    raw = RawClient(srv.port)
    raw.send(handshake_request("/deny"))
    status, headers, _ = raw.read_head()
    assert status == 401
    assert headers["transfer-encoding"] == "chunked"
    assert raw.at_eof()


@pytest.mark.parametrize("app_name", ["hello", "http_only"])
def test_app_without_websocket_support_refuses_cleanly(pounce_process: Any, app_name: str) -> None:
    module = "testapps" if app_name == "hello" else "wsapps"
    proc = pounce_process(f"{module}:{app_name}", "--port", "0")
    url = proc.url.replace("http://", "ws://") + "/ws"

    async def go() -> None:
        async with client(url):
            pass

    with pytest.raises(InvalidStatus) as info:
        run(go())
    assert info.value.response.status_code == (403 if app_name == "hello" else 500)
    # the worker keeps serving
    assert httpx.get(proc.url, timeout=5).status_code in (200, 500)
    proc.stop()
    output = proc.output()
    assert "Traceback" not in output
    if app_name == "http_only":
        assert "handshake refused (500)" in output


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"key": None}, 400),
        ({"key": "dG9vc2hvcnQ="}, 400),
        ({"version": "8"}, 426),
        ({"version": None}, 426),
        ({"method": "POST"}, 400),
    ],
)
def test_bad_handshake_never_reaches_the_app(ws_serve: Any, kwargs: dict[str, Any], status: int) -> None:
    srv = ws_serve(recorder)
    raw = RawClient(srv.port)
    raw.send(handshake_request(**kwargs))
    got, headers, _ = raw.read_head()
    assert got == status
    if status == 426:
        assert headers["sec-websocket-version"] == "13"
    assert raw.at_eof()
    assert seen == []
    # the worker keeps serving
    good = RawClient(srv.port)
    good.open()
    good.send(frame(0x1, b"still here"))
    assert good.read_frame()[:2] == (0x1, b"still here")


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (frame(0x1, b"unmasked", mask=False), 1002),
        (frame(0x3, b"reserved opcode"), 1002),
        (frame(0x9, b"x" * 126), 1002),  # control frame too long
        (frame(0x9, b"fragmented ping", fin=False), 1002),
        (frame(0x0, b"continuation without a start"), 1002),
        (frame(0x1, b"no deflate", rsv1=True), 1002),
        (frame(0x1, b"bad \xff\xfe utf-8"), 1007),
        (frame(0x8, b"\x03\xe8\xff"), 1007),  # close reason not UTF-8
    ],
)
def test_protocol_errors_close_with_the_right_code(ws_serve: Any, bad: bytes, code: int) -> None:
    srv = ws_serve(recorder)
    raw = RawClient(srv.port)
    raw.open(extra="")
    raw.send(frame(0x1, b"ok"))
    assert raw.read_frame()[:2] == (0x1, b"ok")
    raw.send(bad)
    assert raw.read_close()[0] == code
    assert raw.at_eof()
    wait_for(lambda: any(isinstance(m, dict) and m["type"] == "websocket.disconnect" for m in seen))
    disconnect = [m for m in seen if isinstance(m, dict) and m["type"] == "websocket.disconnect"][0]
    assert disconnect["code"] == code
    other = RawClient(srv.port)
    other.open()
    other.send(frame(0x2, b"\x01\x02"))
    assert other.read_frame()[:2] == (0x2, b"\x01\x02")


def test_fragmented_messages_are_reassembled(ws_serve: Any) -> None:
    srv = ws_serve(recorder)
    raw = RawClient(srv.port)
    raw.open()
    raw.send(frame(0x1, "héllo ".encode()[:2], fin=False))
    raw.send(frame(0x9, b"ping in the middle"))  # control frames may interleave
    raw.send(frame(0x0, "héllo ".encode()[2:], fin=False))
    raw.send(frame(0x0, b"world"))
    assert raw.read_frame() == (0xA, b"ping in the middle", True)
    assert raw.read_frame() == (0x1, "héllo world".encode(), True)
    raw.send(frame(0x2, b"\x00" * 10, fin=False) + frame(0x0, b"\x01" * 10))
    assert raw.read_frame() == (0x2, b"\x00" * 10 + b"\x01" * 10, True)

    async def go() -> Any:
        async with client(ws_url(srv)) as ws:
            await ws.send(["frag", "mented", " text"])
            return await ws.recv()

    assert run(go()) == "fragmented text"


# -- limits, compression, keepalive -------------------------------------------------------


def test_max_message_size_closes_with_1009(ws_serve: Any) -> None:
    srv = ws_serve(recorder, websocket_max_message_size=1024)

    async def go() -> tuple[Any, int | None]:
        async with client(ws_url(srv), compression=None) as ws:
            await ws.send("a" * 1024)
            echoed = await ws.recv()
            await ws.send(["b" * 600, "b" * 600])  # too big only once reassembled
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return echoed, ws.close_code

    echoed, code = run(go())
    assert echoed == "a" * 1024
    assert code == 1009
    disconnect = [m for m in seen if isinstance(m, dict) and m["type"] == "websocket.disconnect"][0]
    assert disconnect["code"] == 1009


def test_max_message_size_counts_decompressed_bytes(ws_serve: Any) -> None:
    srv = ws_serve(recorder, websocket_max_message_size=10000)

    async def go() -> int | None:
        async with client(ws_url(srv)) as ws:
            await ws.send("z" * 20000)  # compresses to a few dozen bytes
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code

    assert run(go()) == 1009


def test_per_message_deflate_negotiated(ws_serve: Any) -> None:
    srv = ws_serve(recorder)
    big = "compress me " * 10000

    async def go() -> tuple[str | None, Any]:
        async with client(ws_url(srv)) as ws:
            await ws.send(big)
            return ws.response.headers.get("sec-websocket-extensions"), await ws.recv()

    extensions, echoed = run(go())
    assert extensions is not None and extensions.startswith("permessage-deflate")
    assert echoed == big
    # the echo really travels compressed on the wire
    raw = RawClient(srv.port)
    headers = raw.open(extra="Sec-WebSocket-Extensions: permessage-deflate\r\n")
    assert headers["sec-websocket-extensions"] == "permessage-deflate"
    raw.send(frame(0x1, b"hello"))
    opcode, payload, _ = raw.read_frame()
    assert opcode == 0x1 and payload != b"hello"
    import zlib

    assert zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff") == b"hello"


def test_per_message_deflate_off(ws_serve: Any) -> None:
    srv = ws_serve(recorder, websocket_per_message_deflate=False)

    async def go() -> tuple[str | None, Any]:
        async with client(ws_url(srv)) as ws:
            await ws.send("plain")
            return ws.response.headers.get("sec-websocket-extensions"), await ws.recv()

    assert run(go()) == (None, "plain")


@pytest.mark.slow
def test_server_pings_and_closes_without_pong(ws_serve: Any) -> None:
    srv = ws_serve(recorder, websocket_ping_interval=0.2, websocket_ping_timeout=0.3)
    # A well-behaved client answers the pings and stays connected.

    async def go() -> Any:
        async with client(ws_url(srv), ping_interval=None) as ws:
            await asyncio.sleep(1.2)  # the behaviour under test: connected through several pings
            await ws.send("alive")
            return await ws.recv()

    assert run(go()) == "alive"
    # A raw client that never answers gets pinged, then closed with 1011.
    raw = RawClient(srv.port)
    raw.open()
    began = time.monotonic()
    opcode, _, _ = raw.read_frame()
    assert opcode == 0x9
    assert raw.read_close()[0] == 1011
    assert raw.at_eof()
    assert time.monotonic() - began < 3


def test_ping_from_client_gets_pong(ws_serve: Any) -> None:
    srv = ws_serve(recorder)
    raw = RawClient(srv.port)
    raw.open()
    raw.send(frame(0x9, b"are you there"))
    assert raw.read_frame() == (0xA, b"are you there", True)
    raw.send(close_frame(1000))
    assert raw.read_close()[0] == 1000
    assert raw.at_eof()


# -- backpressure -------------------------------------------------------------------------


@pytest.mark.slow
def test_client_that_does_not_read_stalls_the_app(ws_serve: Any) -> None:
    srv = ws_serve(floods)
    raw = RawClient(srv.port)
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    raw.open()
    wait_for(lambda: seen, what="the app to start sending")
    stalled_at = settled(lambda: seen[0], quiet=0.5)
    # 2000 messages are 125 MiB; socket buffers hold a few MiB at most.
    assert stalled_at * 65536 < 16 * 1024 * 1024
    # reading again lets the app go on
    for _ in range(200):
        raw.read_frame()
    wait_for(lambda: seen[0] > stalled_at + 100)


@pytest.mark.slow
def test_app_that_does_not_read_stops_pounce_reading(ws_serve: Any) -> None:
    srv = ws_serve(never_reads, timeout_graceful_shutdown=1)
    raw = RawClient(srv.port)
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    raw.open()
    message = frame(0x2, b"y" * 65536)
    sent = 0
    raw.sock.settimeout(0.5)
    deadline = time.monotonic() + 10
    try:
        while sent < 256 * 1024 * 1024 and time.monotonic() < deadline:
            raw.sock.sendall(message)
            sent += len(message)
    except TimeoutError:
        pass
    # Unbounded reading would take all 256 MiB; pounce stops after about its
    # inbox limit plus what the kernel buffers.
    assert sent < 32 * 1024 * 1024


# -- shutdown -------------------------------------------------------------------------------


def test_graceful_shutdown_closes_with_1012(ws_serve: Any) -> None:
    srv = ws_serve(recorder, timeout_graceful_shutdown=10)
    result: dict[str, Any] = {}
    opened = threading.Event()

    async def go() -> None:
        async with client(ws_url(srv)) as ws:
            await ws.send("hi")
            await ws.recv()
            opened.set()
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            result["code"] = ws.close_code

    thread = threading.Thread(target=lambda: run(go()))
    thread.start()
    assert opened.wait(10)
    began = time.monotonic()
    srv.stop()
    thread.join(10)
    assert result["code"] == 1012
    assert time.monotonic() - began < 5
    disconnect = [m for m in seen if isinstance(m, dict) and m["type"] == "websocket.disconnect"][0]
    assert disconnect["code"] == 1012


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_closes_open_websockets(pounce_process: Any, workers: str) -> None:
    proc = pounce_process("wsapps:echo", "--port", "0", "--lifespan", "off", "--workers", workers)
    url = proc.url.replace("http://", "ws://") + "/ws"
    codes: list[int | None] = []

    async def go() -> None:
        sockets: list[ClientConnection] = []
        for _ in range(3):
            ws = await client(url)
            await ws.send("x")
            assert await ws.recv() == "x"
            sockets.append(ws)
        import signal

        proc.signal(signal.SIGTERM)
        for ws in sockets:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            codes.append(ws.close_code)

    try:
        run(go())
    except Exception as exc:
        raise AssertionError(f"client failed: {exc!r}; server output:\n{proc.output()}") from exc
    assert proc.wait(15) == 0
    assert codes == [1012, 1012, 1012]
    assert proc.output().count("app saw disconnect 1012") == 3


@pytest.mark.slow
def test_shutdown_closes_even_when_the_app_never_reads(ws_serve: Any) -> None:
    srv = ws_serve(never_reads, timeout_graceful_shutdown=2)
    raw = RawClient(srv.port)
    raw.open()
    stopper = threading.Thread(target=srv.stop)
    stopper.start()
    # the open socket is closed with 1012 even though its app never reads
    assert raw.read_close()[0] == 1012
    raw.send(close_frame(1012))
    assert raw.at_eof()
    stopper.join(10)
    assert not stopper.is_alive()


def test_raw_handshake_response_headers(ws_serve: Any) -> None:
    srv = ws_serve(recorder)
    raw = RawClient(srv.port)
    raw.send(handshake_request())
    status, headers, _ = raw.read_head()
    assert status == 101
    import base64
    import hashlib

    expected = base64.b64encode(hashlib.sha1((KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    assert headers["sec-websocket-accept"] == expected.decode()
    assert headers["upgrade"].lower() == "websocket"
    assert headers["server"] == "pounce"
    assert "sec-websocket-extensions" not in headers  # not offered, not given


def test_wss_over_tls(ws_serve: Any, tmp_path: Any) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    pem = tmp_path / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    srv = ws_serve(recorder, tls_certfile=str(pem))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    url = f"wss://127.0.0.1:{srv.port}/secure"

    async def go() -> Any:
        async with client(url, ssl=context) as ws:
            await ws.send("scope")
            info = json.loads(await ws.recv())
            await ws.send("x" * 100000)
            return info, await ws.recv()

    info, echoed = run(go())
    assert info["scheme"] == "wss"
    assert "tls" in info["extensions"]
    assert echoed == "x" * 100000


async def crashes(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await receive()
    raise ValueError("app bug")


def test_app_error_after_accept_closes_with_1011(ws_serve: Any) -> None:
    srv = ws_serve(crashes)

    async def go() -> int | None:
        async with client(ws_url(srv)) as ws:
            await ws.send("boom")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code

    assert run(go()) == 1011
    # and the next connection is served
    raw = RawClient(srv.port)
    raw.open()


def test_upgrade_after_a_keep_alive_request(ws_serve: Any) -> None:
    srv = ws_serve(demo_app)
    raw = RawClient(srv.port)
    raw.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body = raw.read_head()
    assert status == 200 and b"ok" in body
    # the same connection upgrades, with a frame sent right behind the request
    raw.send(handshake_request() + frame(0x1, b"early frame"))
    status, _, _ = raw.read_head()
    assert status == 101
    assert raw.read_frame()[:2] == (0x1, b"early frame")


def test_websocket_over_a_unix_socket(ws_serve: Any, tmp_path: Any) -> None:
    from websockets.asyncio.client import unix_connect

    path = str(tmp_path / "pounce.sock")
    ws_serve(demo_app, uds=path)

    async def go() -> Any:
        async with unix_connect(path, "ws://localhost/ws") as ws:
            await ws.send("over a unix socket")
            return await ws.recv()

    assert run(go()) == "over a unix socket"
