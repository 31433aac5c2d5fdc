"""ASGI lifespan: auto, on, off; state; failures."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pounce import LifespanError
from pounce.core.lifecycle import LifespanStarted
from pounce.testing import ServerThread
from testapps import echo_scope, hello

events: list[str] = []


async def recording(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            events.append(message["type"])
            if message["type"] == "lifespan.startup":
                scope["state"]["pool"] = "ready"
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    else:
        await hello(scope, receive, send)


async def no_lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http", "this app only does http"
    await hello(scope, receive, send)


async def raising_startup(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("cannot connect")
    await hello(scope, receive, send)


def test_startup_and_shutdown_run_once(serve) -> None:
    events.clear()
    srv = serve(recording)
    assert events == ["lifespan.startup"]
    assert httpx.get(srv.url).status_code == 200
    srv.stop()
    assert events == ["lifespan.startup", "lifespan.shutdown"]


def test_state_reaches_requests(serve) -> None:
    srv = serve(echo_scope)
    assert httpx.get(srv.url).json()["state"] == {"started": "yes"}


def test_auto_tolerates_apps_without_lifespan(serve) -> None:
    srv = serve(no_lifespan)
    assert httpx.get(srv.url).text == "Hello, world!"
    assert srv.collector.of_type(LifespanStarted)[0].enabled is False


def test_off_never_calls_lifespan(serve) -> None:
    events.clear()
    srv = serve(recording, lifespan="off")
    assert httpx.get(srv.url).status_code == 200
    srv.stop()
    assert events == []


def test_on_makes_exceptions_fatal() -> None:
    with pytest.raises(LifespanError, match="cannot connect"):
        ServerThread(raising_startup, lifespan="on").start()


def test_startup_failed_message_is_fatal_even_in_auto() -> None:
    from testapps import failing_startup

    with pytest.raises(LifespanError, match="database unreachable") as info:
        ServerThread(failing_startup).start()
    assert info.value.exit_code == 3
