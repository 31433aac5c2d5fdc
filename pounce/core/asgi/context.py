"""What the app side of a worker needs, computed once per worker.

:class:`AppContext` holds the wrapped app, the request observers, the
lifespan state and the settings that ASGI streams read on every request, as
plain attributes: nothing is looked up in the config, and no pluggy hook is
called, per request. The transport's ``WorkerContext`` extends it with what
connections need (timeouts, buffers, the connection set).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pounce.core.asgi.eager import TaskStarter
from pounce.core.asgi.proxy import ProxyTrust

if TYPE_CHECKING:
    from pounce.core.config import ServerConfig

Observer = Callable[[dict[str, Any], int, int, float], None]


class WebSocketSettings:
    """The ``[websocket]`` section, read once per worker."""

    __slots__ = ("enabled", "max_message_size", "ping_interval", "ping_timeout", "per_message_deflate",
                 "shutdown_code")

    def __init__(self, config: ServerConfig) -> None:
        section = config.websocket
        # ``--ws none``: upgrade requests reach the app as plain HTTP.
        self.enabled: bool = section.implementation != "none"
        self.max_message_size: int = section.max_message_size
        self.ping_interval: float = section.ping_interval
        self.ping_timeout: float = section.ping_timeout
        self.per_message_deflate: bool = section.per_message_deflate
        # 1012 tells clients "come back shortly", which is what a graceful
        # stop or restart of a worker means; a plugin may set 1001 (going
        # away) for a stop that will not come back.
        self.shutdown_code = 1012


class AppContext:
    """Per-worker constants and counters of the app side."""

    def __init__(
        self,
        config: ServerConfig,
        app: Any,
        *,
        observers: tuple[Observer, ...] = (),
        state: dict[str, Any] | None = None,
        max_requests: int | None = None,
        on_request_limit: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.app = app
        self.observers = observers
        self.lifespan_state: dict[str, Any] = state if state is not None else {}
        self.loop: asyncio.AbstractEventLoop | None = None  # the worker's, once it runs
        self.tasks: TaskStarter | None = None  # for the loop (made by the first stream)
        self.root_path: str = config.root_path
        self.request_timeout: float = config.http.timeout_request
        self.max_body: int = config.http.max_request_body_size
        self.proxy = ProxyTrust(config.forwarded_allow_ips) if config.proxy_headers else None
        self.websocket = WebSocketSettings(config)
        self.max_requests: int = config.max_requests if max_requests is None else max_requests
        self.on_request_limit = on_request_limit
        self.requests_served = 0

    def tasks_for(self, loop: asyncio.AbstractEventLoop) -> TaskStarter:
        """The :class:`~.eager.TaskStarter` for ``loop`` (made once a loop)."""
        tasks = self.tasks
        if tasks is None or tasks.loop is not loop:
            tasks = self.tasks = TaskStarter(loop)
        return tasks

    def count_request(self) -> None:
        self.requests_served += 1
        if self.max_requests and self.requests_served == self.max_requests and self.on_request_limit:
            self.on_request_limit()
