"""The one ASGI http request cycle, with no socket and no parser: an
:class:`HttpStream` driven by hand, its owner a recorder of what the stream
asks for. What holds here holds for every protocol that drives the stream."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from pounce.core.asgi.context import AppContext
from pounce.core.asgi.stream import BODY_HIGH_WATER, ClientDisconnected, HttpStream
from pounce.core.config import ServerConfig
from pounce.core.protocol.events import CONTENT_LENGTH, Request


class Owner:
    """Records every StreamOwner call; ``paused`` answers sends."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.paused = False
        self.done = asyncio.Event()

    def send_head(self, stream: HttpStream, status: int, headers: list[tuple[bytes, bytes]], body: bytes,
                  more: bool, trailers: bool) -> bool:
        self.calls.append(("head", status, headers, body, more, trailers))
        return more and self.paused

    def send_body(self, stream: HttpStream, body: bytes, more: bool) -> bool:
        self.calls.append(("body", body, more))
        return more and self.paused

    def send_trailers(self, stream: HttpStream, trailers: list[tuple[bytes, bytes]]) -> None:
        self.calls.append(("trailers", trailers))

    def send_continue(self, stream: HttpStream) -> None:
        self.calls.append(("continue",))

    def send_error(self, stream: HttpStream, status: int) -> None:
        self.calls.append(("error", status))

    def body_consumed(self, stream: HttpStream, size: int) -> None:
        self.calls.append(("consumed", size))

    async def drain(self, stream: HttpStream) -> None:
        self.calls.append(("drain",))
        while self.paused:
            await asyncio.sleep(0)

    def abort(self, stream: HttpStream) -> None:
        self.calls.append(("abort",))

    def stream_done(self, stream: HttpStream) -> None:
        self.calls.append(("done",))
        self.done.set()

    def kinds(self) -> list[str]:
        return [call[0] for call in self.calls]


Observed = list[tuple[int, int]]


def make(app: Callable[..., Awaitable[None]], *, method: bytes = b"GET", expect: bool = False,
         observed: Observed | None = None, **overrides: Any) -> tuple[HttpStream, Owner]:
    config = ServerConfig.load(env={}, discover=False, lifespan="off", **overrides)

    def observe(scope: dict[str, Any], status: int, sent: int, duration: float) -> None:
        if observed is not None:
            observed.append((status, sent))

    ctx = AppContext(config, app, observers=(observe,))
    ctx.loop = asyncio.get_running_loop()
    request = Request(method, b"/", b"1.1", [], CONTENT_LENGTH, 0, True, expect_continue=expect)
    owner = Owner()
    stream = HttpStream(owner, ctx, {"type": "http", "method": method.decode()}, request)
    return stream, owner


async def run(stream: HttpStream, owner: Owner) -> None:
    stream.start()
    await asyncio.wait_for(owner.done.wait(), 5)


async def respond(send: Any, body: bytes = b"hi", **start: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"X-A", b"1")], **start})
    await send({"type": "http.response.body", "body": body})


def test_the_head_waits_for_the_first_body_message_and_carries_it() -> None:
    async def main() -> None:
        observed: Observed = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await respond(send)

        stream, owner = make(app, observed=observed)
        await run(stream, owner)
        assert owner.calls == [("head", 200, [(b"x-a", b"1")], b"hi", False, False), ("done",)]
        assert observed == [(200, 2)]

    asyncio.run(main())


@pytest.mark.parametrize("eager", [True, False])
def test_start_runs_the_first_step_at_once_unless_told_not_to(eager: bool) -> None:
    async def main() -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await respond(send)

        stream, owner = make(app)
        asyncio.get_running_loop().call_soon(lambda: starts.append(stream.start(eager=eager)))
        starts: list[None] = []
        await asyncio.sleep(0)  # the callback runs: start() is called from a plain loop callback
        assert starts and (owner.kinds() == ["head", "done"]) is eager
        await asyncio.wait_for(owner.done.wait(), 5)
        assert owner.kinds() == ["head", "done"]

    asyncio.run(main())


@pytest.mark.parametrize("given", [
    [(b"content-type", b"text/plain"), (b"X-Mixed", b"a")],
    ((b"content-type", b"text/plain"), [b"x-list-pair", bytearray(b"v")]),
    "generator",
])
def test_response_headers_reach_the_owner_as_lowercase_bytes_tuples(given: Any) -> None:
    """Whatever shape the app's headers have (any iterable, read once; pairs
    as lists; bytearray values; any case), and whether those names were seen
    before or not, the owner gets a fresh list of lowercase (bytes, bytes)
    tuples, never the app's own list."""
    def headers() -> Any:
        if given == "generator":
            return (pair for pair in [(b"content-type", b"text/plain"), (b"X-Gen", b"g")])
        return given

    expected = [(bytes(n).lower(), bytes(v)) for n, v in headers()]

    async def main() -> None:
        for _ in range(2):  # names new, then names seen before
            sent = headers()

            async def app(scope: Any, receive: Any, send: Any, sent: Any = sent) -> None:
                await send({"type": "http.response.start", "status": 200, "headers": sent})
                await send({"type": "http.response.body", "body": b"x"})

            stream, owner = make(app)
            await run(stream, owner)
            got = owner.calls[0][2]
            assert got == expected and all(type(pair) is tuple for pair in got)
            assert got is not sent

    asyncio.run(main())


def test_request_body_in_pieces_with_backpressure_and_consumption() -> None:
    async def main() -> None:
        got: list[dict[str, Any]] = []
        ready = asyncio.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await ready.wait()
            while True:
                message = await receive()
                got.append(message)
                if not message.get("more_body"):
                    break
            await respond(send, b"")

        stream, owner = make(app)
        stream.start()
        assert stream.feed(b"a" * 10) is False
        assert stream.feed(b"b" * BODY_HIGH_WATER) is True  # the owner is asked to stop reading
        ready.set()
        await asyncio.sleep(0.01)
        stream.feed(b"c")
        stream.feed_end()
        await asyncio.wait_for(owner.done.wait(), 5)
        assert b"".join(m["body"] for m in got) == b"a" * 10 + b"b" * BODY_HIGH_WATER + b"c"
        assert got[-1]["more_body"] is False
        assert ("consumed", 10 + BODY_HIGH_WATER) in owner.calls

    asyncio.run(main())


def test_100_continue_once_on_the_first_receive() -> None:
    async def main() -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            task = asyncio.ensure_future(receive())
            await asyncio.sleep(0)
            stream.feed(b"x")
            stream.feed_end()
            assert (await task)["body"] == b"x"
            await respond(send)

        stream, owner = make(app, method=b"POST", expect=True)
        await run(stream, owner)
        assert owner.kinds().count("continue") == 1 and owner.kinds()[0] == "continue"

    asyncio.run(main())


@pytest.mark.parametrize(("where", "expected"), [("before", ["error", "done"]),
                                                  ("after_start", ["error", "done"]),
                                                  ("mid_body", ["head", "abort", "done"]),
                                                  ("returned_mid_body", ["head", "abort", "done"]),
                                                  ("never_started", ["error", "done"])])
def test_an_app_going_wrong(where: str, expected: list[str]) -> None:
    async def main() -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            if where == "never_started":
                return
            if where != "before":
                await send({"type": "http.response.start", "status": 200, "headers": []})
            if where in ("mid_body", "returned_mid_body"):
                await send({"type": "http.response.body", "body": b"part", "more_body": True})
            if where != "returned_mid_body":
                raise ValueError("app bug")

        stream, owner = make(app)
        await run(stream, owner)
        assert owner.kinds() == expected
        if "error" in expected:
            assert owner.calls[0] == ("error", 500)

    asyncio.run(main())


def test_disconnect_reaches_receive_and_send_raises() -> None:
    async def main() -> None:
        seen: list[Any] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await receive()  # the (empty) body
            seen.append(await receive())
            try:
                await respond(send)
            except ClientDisconnected as exc:
                seen.append(exc)

        stream, owner = make(app)
        stream.start()
        stream.feed_end()
        await asyncio.sleep(0.01)
        stream.on_disconnect()
        await asyncio.wait_for(owner.done.wait(), 5)
        assert seen[0] == {"type": "http.disconnect"} and isinstance(seen[1], ClientDisconnected)
        assert "error" not in owner.kinds()  # nobody to answer

    asyncio.run(main())


def test_trailers_need_the_announcement_and_come_after_the_last_body() -> None:
    async def main() -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
            await send({"type": "http.response.body", "body": b"x"})
            await send({"type": "http.response.trailers", "headers": [(b"A", b"1")], "more_trailers": True})
            await send({"type": "http.response.trailers", "headers": [(b"b", b"2")]})

        stream, owner = make(app)
        await run(stream, owner)
        assert owner.calls[0] == ("head", 200, [], b"x", False, True)
        assert owner.calls[1] == ("trailers", [(b"a", b"1"), (b"b", b"2")])

        async def rude(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.trailers", "headers": []})

        stream, owner = make(rude)
        await run(stream, owner)
        assert owner.kinds() == ["error", "done"]

    asyncio.run(main())


def test_a_paused_peer_holds_the_app_in_send() -> None:
    async def main() -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"1", "more_body": True})
            await send({"type": "http.response.body", "body": b"2"})

        stream, owner = make(app)
        owner.paused = True
        stream.start()
        await asyncio.sleep(0.01)
        assert owner.kinds() == ["head", "drain"]  # waiting, not spinning through the body
        owner.paused = False
        await asyncio.wait_for(owner.done.wait(), 5)
        assert owner.kinds() == ["head", "drain", "body", "done"]

    asyncio.run(main())


def test_timeout_request_answers_504_and_cancels_the_app() -> None:
    async def main() -> None:
        cancelled = asyncio.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        stream, owner = make(app, http_timeout_request=0.05)
        await run(stream, owner)
        assert owner.kinds() == ["error", "done"] and owner.calls[0] == ("error", 504) and cancelled.is_set()

    asyncio.run(main())


def test_a_body_over_max_request_body_size_is_marked() -> None:
    async def main() -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await asyncio.sleep(30)

        stream, owner = make(app, http_max_request_body_size=4)
        assert stream.feed(b"abcd") is False and not stream.too_large
        stream.feed(b"e")
        assert stream.too_large  # the owner answers 413

    asyncio.run(main())


def test_messages_after_the_response_are_ignored_and_bad_ones_refused() -> None:
    async def main() -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await respond(send)
            await send({"type": "http.response.body", "body": b"late"})
            assert await receive() == {"type": "http.disconnect"}

        stream, owner = make(app)
        await run(stream, owner)
        assert owner.kinds() == ["head", "done"]
        for bad in ({"type": "http.response.start", "status": 99},
                    {"type": "http.response.body", "body": b"x"},
                    {"type": "websocket.send"}):
            async def wrong(scope: Any, receive: Any, send: Any, message: dict[str, Any] = bad) -> None:
                await send(message)

            stream, owner = make(wrong)
            await run(stream, owner)
            assert owner.kinds() == ["error", "done"]

    asyncio.run(main())
