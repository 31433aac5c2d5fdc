"""The core's own plugin: its options and the trylast defaults of the
firstresult hooks (worker mode, bind, serve). Registered first, as ``core``.

It is written like any other plugin, so it doubles as an example.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING, Any

from pounce.core.boot import run_loop, serve_worker
from pounce.core.hookspecs import hookimpl
from pounce.core.lifecycle import ServingStarted
from pounce.core.options import OptionValueError
from pounce.core.transport.sockets import bind_from_config

if TYPE_CHECKING:
    import socket

    from pounce.core.config import ServerConfig
    from pounce.core.options import OptionRegistry
    from pounce.core.server import Server

logger = logging.getLogger("pounce.server")


def _check_header(value: str) -> None:
    name, sep, _ = value.partition(":")
    if not sep or not name.strip() or any(c in value for c in "\r\n\0"):
        raise OptionValueError('"NAME:VALUE" header strings')


def _check_octal(value: str) -> None:
    try:
        mode = int(value, 8)
    except ValueError:
        raise OptionValueError('an octal file mode such as "660"') from None
    if not 0 <= mode <= 0o777:
        raise OptionValueError('an octal file mode such as "660"')


@hookimpl
def pounce_add_options(options: OptionRegistry) -> None:
    add = options.add
    # [server]
    add("server", "app", "str", None, 'The ASGI app as "module:attribute" (APP on the command line).',
        nullable=True, metavar="MODULE:ATTR")
    add("server", "factory", "bool", False, "Call the app attribute to get the ASGI app.",
        cli="--factory")
    add("server", "app_dir", "str", "", "Directory put first on sys.path before importing the app.",
        cli="--app-dir", metavar="DIR")
    add("server", "host", "str", "127.0.0.1", "Address to bind (IPv4 or IPv6).", cli="--host")
    add("server", "port", "int", 8000, "TCP port to bind; 0 picks a free port.", cli="--port",
        min=0, max=65535)
    add("server", "uds", "str", None, "Bind a unix domain socket at this path instead of host/port.",
        cli="--uds", nullable=True, metavar="PATH")
    add("server", "uds_permissions", "str", None,
        'Octal file mode for the unix socket, e.g. "660" (default: umask decides).',
        cli="--uds-permissions", nullable=True, metavar="MODE", validator=_check_octal)
    add("server", "fd", "int", None, "Serve on an inherited listening socket file descriptor.",
        cli="--fd", nullable=True, min=0)
    add("server", "workers", "int", 1, 'Number of workers; "auto" means one per CPU.',
        cli="--workers", min=1, auto=True)
    add("server", "worker_mode", "str", "auto",
        "thread | process; auto picks threads on free-threaded Python, processes otherwise.",
        cli="--worker-mode", choices=("auto", "thread", "process"))
    add("server", "loop", "str", "auto", "Event loop: auto uses uvloop when installed.",
        cli="--loop", choices=("auto", "asyncio", "uvloop"))
    add("server", "lifespan", "str", "auto", "ASGI lifespan: auto runs it if the app supports it.",
        cli="--lifespan", choices=("auto", "on", "off"))
    add("server", "root_path", "str", "", "ASGI root_path for apps mounted below a prefix.",
        cli="--root-path")
    add("server", "backlog", "int", 2048, "Listen backlog of the listening socket.",
        cli="--backlog", min=1)
    add("server", "limit_concurrency", "int", 0,
        "Connections over this many get 503; 0 means no limit.", cli="--limit-concurrency", min=0)
    add("server", "max_requests", "int", 0,
        "Recycle a worker after this many requests (0: never).", cli="--limit-max-requests", min=0)
    add("server", "max_requests_jitter", "int", 0,
        "Random extra requests (0..N) added per worker to max_requests.",
        cli="--limit-max-requests-jitter", min=0)
    add("server", "timeout_keep_alive", "float", 5.0, "Close idle keep-alive connections after this many seconds.",
        cli="--timeout-keep-alive", min=0)
    add("server", "timeout_graceful_shutdown", "float", 30.0,
        "Seconds in-flight requests get to finish on shutdown.", cli="--timeout-graceful-shutdown", min=0)
    add("server", "proxy_headers", "bool", True,
        "Trust X-Forwarded-* and Forwarded from forwarded_allow_ips.", cli="--proxy-headers")
    add("server", "forwarded_allow_ips", "list", ["127.0.0.1"],
        'Proxies trusted for proxy headers: addresses, CIDR networks, "unix", or "*".',
        cli="--forwarded-allow-ips", metavar="IPS")
    add("server", "server_header", "bool", True, "Send a Server header.", cli="--server-header")
    add("server", "date_header", "bool", True, "Send a Date header.", cli="--date-header")
    add("server", "headers", "list", [], 'Extra default response headers, "NAME:VALUE".',
        cli="--header", cli_split=False, metavar="NAME:VALUE", validator=_each(_check_header))
    # [http]
    add("http", "max_incomplete_event_size", "int", 16384,
        "Largest request line plus headers, in bytes (431 or 414 beyond).",
        cli="--h11-max-incomplete-event-size", min=1024)
    add("http", "max_request_body_size", "int", 0,
        "Largest request body in bytes, chunked ones counted as they arrive (413 beyond); 0: no limit.",
        cli="--max-request-body-size", min=0)
    add("http", "timeout_request_header", "float", 10.0,
        "Close a connection whose request headers take longer than this.",
        cli="--timeout-request-header", min=0)
    add("http", "timeout_request", "float", 0.0,
        "Seconds a request may take from its complete head to its complete response: 504 if no "
        "response has started by then, else the connection is closed; the app is cancelled. 0: no limit.",
        cli="--timeout-request", min=0)
    add("http", "fast_path", "bool", True,
        "Parse common request heads with pounce's h1fast parser; false sends every request "
        "through h11 (for comparison and debugging; responses are the same bytes either way).",
        cli="--h1fast")
    add("http", "implementation", "str", "auto",
        "HTTP/1.1 parser: pounce always uses h11 (with its own fast path); httptools is "
        "accepted as a uvicorn spelling and means the same.",
        cli="--http", choices=("auto", "h11"), aliases={"httptools": "auto"})
    # [http2]
    add("http2", "enabled", "bool", True,
        'HTTP/2: ALPN "h2" under TLS, h2c (prior knowledge and Upgrade: h2c) on cleartext; '
        "false serves HTTP/1.1 only.", cli="--http2")
    add("http2", "max_concurrent_streams", "int", 100,
        "Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS); a stream the "
        "client reset counts until its app returns. Beyond: REFUSED_STREAM.", min=1, max=2**31 - 1)
    add("http2", "initial_window_size", "int", 65535,
        "Receive window per stream, in bytes: request body the client may send ahead of the app "
        "reading it. Re-opened as the app consumes the body.", min=1, max=2**31 - 1)
    add("http2", "max_frame_size", "int", 16384, "Largest frame payload the client may send, in bytes.",
        min=16384, max=2**24 - 1)
    add("http2", "max_header_list_size", "int", 65536,
        "Largest request header list after HPACK decoding, in bytes (names, values and 32 per field); "
        "beyond: the connection ends (HPACK bomb).", min=1024)
    add("http2", "max_requests_per_connection", "int", 0,
        "GOAWAY after this many streams on one connection (the client goes on over a new one); 0: no cap.",
        min=0)
    add("http2", "max_resets", "int", 200,
        "Stream resets a client may cause in a burst (its own RST_STREAM before a response ends, "
        "streams pounce must reset or refuse), refilled over 10 s; beyond: GOAWAY ENHANCE_YOUR_CALM "
        "(rapid reset CVE-2023-44487, MadeYouReset CVE-2025-8671). 0: no limit.", min=0)
    add("http2", "max_control_frames", "int", 1000,
        "SETTINGS, PING, PRIORITY, WINDOW_UPDATE, empty DATA and unknown frames a client may send "
        "in a burst, refilled over 10 s and by each DATA frame pounce sends; beyond: GOAWAY "
        "ENHANCE_YOUR_CALM. 0: no limit.", min=0)
    add("http2", "flow_control_timeout", "float", 30.0,
        "Seconds a response may wait for a client that keeps its flow-control window shut; then "
        "the stream is reset and the app's next send raises. 0: wait for ever.", min=0)
    # [websocket]
    add("websocket", "implementation", "str", "auto",
        "WebSocket support: auto and wsproto use wsproto (websockets is accepted as a "
        "uvicorn spelling of the same); none passes upgrade requests to the app as plain HTTP.",
        cli="--ws", choices=("auto", "wsproto", "none"), aliases={"websockets": "wsproto"})
    add("websocket", "max_message_size", "int", 16777216, "Largest WebSocket message; larger closes with 1009.",
        cli="--ws-max-size", min=1)
    add("websocket", "ping_interval", "float", 20.0, "Seconds between server pings; 0 disables.",
        cli="--ws-ping-interval", min=0)
    add("websocket", "ping_timeout", "float", 20.0, "Close when a ping gets no pong within this.",
        cli="--ws-ping-timeout", min=0)
    add("websocket", "per_message_deflate", "bool", True, "Negotiate permessage-deflate compression.",
        cli="--ws-per-message-deflate", cli_style="value")
    # [plugins]
    add("plugins", "enable", "list", [], "Installed third-party plugins to activate.",
        cli="--plugin", metavar="NAME")
    add("plugins", "disable", "list", [], "Plugins (built-in or not) to turn off.",
        cli="--no-plugin", metavar="NAME")
    add("plugins", "autoload", "bool", False, "Activate every installed plugin.")


def _each(check: Any) -> Any:
    def validate(values: tuple[str, ...]) -> None:
        for value in values:
            check(value)

    return validate


@hookimpl(trylast=True)
def pounce_worker_mode(config: ServerConfig) -> str:
    if config.worker_mode != "auto":
        return config.worker_mode
    gil_enabled = getattr(sys, "_is_gil_enabled", lambda: True)()
    return "process" if gil_enabled else "thread"


@hookimpl(trylast=True)
def pounce_bind(config: ServerConfig) -> list[socket.socket]:
    return bind_from_config(config)


@hookimpl
def pounce_banner(config: ServerConfig, info: dict[str, Any]) -> list[str]:
    lines = [f"pounce {info['version']} serving {config.app or 'app'}"]
    lines += [f"listening on {address}" for address in info["addresses"]]
    lines += [f"listening on {label}" for label in info.get("listeners", ())]
    if info["workers"] == 1:
        lines.append("workers: 1 (single worker, no supervisor)")
    else:
        lines.append(f"workers: {info['workers']} ({info['worker_mode']} mode)")
    lines.append("plugins: " + (", ".join(info["plugins"]) or "none"))
    return lines


@hookimpl(trylast=True)
def pounce_serve(server: Server, sockets: list[socket.socket]) -> bool:
    """The single-worker fast path: one event loop in this thread."""
    run_loop(serve_single(server, sockets), server.config.loop)
    return True


async def serve_single(server: Server, sockets: list[socket.socket]) -> None:
    config = server.config
    server.install_signal_handlers(asyncio.get_running_loop())

    def retire() -> None:
        logger.info("served %d requests (max_requests): stopping", config.max_requests)
        server.shutdown("api")

    def ready(worker: Any) -> None:
        server.add_waker(worker.stop_threadsafe)
        server.emit(ServingStarted(workers=1))

    await serve_worker(server.plugins, config, server.app, sockets, tls=server.tls_context,
                       lifespan=server.lifespan_runner(), on_request_limit=retire, on_ready=ready,
                       listeners=server.listeners)
