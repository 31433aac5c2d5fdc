"""Programmatic plugins: registration, historic hooks, wrap_app order, errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pounce import PluginError, Server, ServerConfig, hookimpl
from pounce.testing import ServerThread
from testapps import hello


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def pounce_add_options(self, options: Any) -> None:
        options.add("recorder", "label", "str", "default-label", "A label.")
        self.seen.append("add_options")

    @hookimpl
    def pounce_configure(self, config: Any) -> None:
        self.seen.append(f"configure {config.recorder.label}")

    @hookimpl
    def pounce_banner(self) -> str:
        return "recorder banner line"


def test_register_after_init_still_sees_options_and_config() -> None:
    recorder = Recorder()
    config = ServerConfig.load(None, env={}, discover=False, port=0)
    server = Server(config, hello)
    server.plugins.register(recorder)
    server.shutdown()  # run() returns at once, after nothing
    srv = ServerThread(hello)
    srv.server.plugins.register(Recorder())
    with srv:
        assert httpx.get(srv.url).status_code == 200
    late = srv.server.plugins.get_plugin("recorder")
    assert late.seen == ["add_options", "configure default-label"]
    assert srv.server.config.recorder.label == "default-label"


def test_plugins_argument_and_options_from_overrides() -> None:
    recorder = Recorder()
    with ServerThread(hello, plugins=[recorder], recorder_label="custom") as srv:
        assert httpx.get(srv.url).status_code == 200
    assert recorder.seen[-1] == "configure custom"


def make_wrapper(tag: bytes, **marker: bool) -> Any:
    class Wrapper:
        name = f"wrap-{tag.decode()}"

        @hookimpl(**marker)
        def pounce_wrap_app(self, app: Any) -> Any:
            async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
                async def tagging_send(message: dict[str, Any]) -> None:
                    if message["type"] == "http.response.start":
                        message = {**message, "headers": [*message.get("headers", []), (b"x-wrap", tag)]}
                    await send(message)

                await app(scope, receive, tagging_send)

            return wrapped

    return Wrapper()


def test_wrap_app_chain_order() -> None:
    plugins = [make_wrapper(b"outer", tryfirst=True), make_wrapper(b"inner", trylast=True)]
    with ServerThread(hello, plugins=plugins) as srv:
        response = httpx.get(srv.url)
    # The tryfirst wrapper is outermost: its header is added last.
    assert response.headers.get_list("x-wrap") == ["inner", "outer"]


class Broken:
    name = "broken"

    @hookimpl
    def pounce_banner(self) -> list[str]:
        raise ValueError("bad banner")


def test_hook_error_names_plugin_and_hook_and_stops() -> None:
    with pytest.raises(PluginError, match="plugin 'broken' failed in pounce_banner: ValueError: bad banner"):
        ServerThread(hello, plugins=[Broken()]).start()


class ThreadMode:
    name = "force-thread"

    @hookimpl(tryfirst=True)
    def pounce_worker_mode(self) -> str:
        return "thread"


def test_worker_mode_hook_firstresult() -> None:
    with ServerThread(hello, plugins=[ThreadMode()]) as srv:
        assert srv.server.worker_mode == "thread"
