"""Built-in plugin ``http3``: HTTP/3 over QUIC (aioquic), advertised by Alt-Svc.

Inert until ``[http3] enabled`` (``--http3``), which needs ``[tls]``
certfile and keyfile: HTTP/3 runs over TLS 1.3 only. Then pounce also
listens on UDP, at the TCP port's number or ``[http3] port``, and every
response over TCP carries ``Alt-Svc: h3=":PORT"; ma=...`` so that browsers
move to HTTP/3. The whole transport comes in through public hooks:

* ``pounce_bind_listeners`` binds the UDP socket in the main process (a
  privileged port works, the banner shows it), and with several workers
  starts the datagram router there (:mod:`.router`);
* ``pounce_serve_listeners`` serves it in each worker (:mod:`.endpoint`);
  its connections (:mod:`.connection`) drive the core's ``HttpStream``, the
  request cycle every protocol shares, and join the worker's connection
  set, so the worker's drain sends GOAWAY and closes them with H3_NO_ERROR;
* Alt-Svc is one of the worker's default headers, rendered with the others
  once a second: nothing per request.

aioquic is an optional dependency (``pip install 'pounce[http3]'``); it is
imported only when HTTP/3 is enabled.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from pounce import hookimpl
from pounce.core.errors import BindError, ConfigError
from pounce.core.transport.listeners import Listener
from pounce.core.transport.sockets import format_host
from pounce.plugins._options import where
from pounce.plugins.http3.settings import H3Settings

if TYPE_CHECKING:
    from pounce.core.config import ServerConfig

name = "http3"
KIND = "quic"

logger = logging.getLogger("pounce.http3")

# Socket buffers for the UDP listener: a burst of datagrams waits here while
# the worker is busy (the kernel caps them at net.core.rmem_max/wmem_max).
UDP_BUFFER = 4 * 1024 * 1024


@hookimpl
def pounce_add_options(options: Any) -> None:
    add = options.add
    add("http3", "enabled", "bool", False,
        "Serve HTTP/3 over QUIC on UDP as well (needs [tls] certfile and keyfile, and aioquic: "
        "pip install 'pounce[http3]').", cli="--http3")
    add("http3", "port", "int", 0, "UDP port for HTTP/3; 0: the same number as the TCP port.",
        cli="--http3-port", min=0, max=65535)
    add("http3", "max_connections", "int", 1000,
        "QUIC connections per worker; new ones beyond are refused (the client falls back to TCP).",
        cli="--http3-max-connections", min=1)
    add("http3", "idle_timeout", "float", 30.0, "Close a QUIC connection idle for this many seconds.",
        cli="--http3-idle-timeout", min=1.0)
    add("http3", "max_concurrent_streams", "int", 100,
        "Requests a client may have open at once on one connection (QUIC MAX_STREAMS).",
        cli="--http3-max-concurrent-streams", min=1, max=10000)
    add("http3", "retry", "bool", False,
        "Validate client addresses with a QUIC Retry before keeping any state (one more round trip "
        "per new connection; a flood from spoofed addresses then costs no memory).",
        cli="--http3-retry")
    add("http3", "early_data", "bool", False,
        "Accept 0-RTT early data on resumed connections. Early data can be replayed by an attacker: "
        "only GET, HEAD and OPTIONS are served from it (others get 425), and the app sees "
        "an 'early-data: 1' header on those.", cli="--http3-early-data")
    add("http3", "alt_svc_max_age", "int", 86400,
        "Seconds clients may remember the Alt-Svc advertisement (its ma= parameter).",
        cli="--http3-alt-svc-max-age", min=0)


@hookimpl(trylast=True)
def pounce_configure(config: ServerConfig) -> None:
    """Refuse HTTP/3 without TLS, without aioquic, or with a certificate
    aioquic cannot use, before anything binds (exit 2)."""
    settings = H3Settings.from_config(config)
    if settings is None:
        return
    try:
        import aioquic  # noqa: F401
    except ImportError:
        raise ConfigError(f"{where(config, 'http3', 'enabled')}: expected aioquic to be installed "
                          "(pip install 'pounce[http3]'), found it missing") from None
    from pounce.plugins.http3.settings import quic_configuration

    quic_configuration(settings, config)


@hookimpl
def pounce_check_info(config: ServerConfig) -> list[str] | None:
    settings = H3Settings.from_config(config)
    if settings is None:
        return None
    port = settings.port or config.port
    shown = port if port else "(the TCP port, once bound)"
    lines = [f"HTTP/3 would listen on udp://{format_host(settings.host)}:{shown} (QUIC, TLS 1.3)",
             f'every TCP response would carry Alt-Svc: h3=":{port or "PORT"}"; ma={settings.alt_svc_max_age}']
    if config.workers != 1:
        lines.append("with several workers, one datagram router in the main process sends each "
                     "QUIC connection's packets to the worker that owns it")
    return lines


@hookimpl
def pounce_bind_listeners(config: ServerConfig, sockets: list[socket.socket],
                          inherited: list[Listener]) -> Listener | None:
    """The UDP socket, bound beside the TCP one (same address, same port
    number unless ``[http3] port``); with several workers, or several
    generations of them (reload), the datagram router too."""
    settings = H3Settings.from_config(config)
    if settings is None or any(listener.kind == KIND for listener in inherited):
        return None  # off, or bound by the parent process (reload)
    host, tcp_port = _tcp_address(sockets)
    host = host or settings.host
    udp = bind_udp(host, settings.port or tcp_port or config.port)
    port = udp.getsockname()[1]
    options = settings.as_options()
    options["port"] = port
    label = f"udp://{format_host(host)}:{port} (HTTP/3)"
    if not _routed(config):
        return Listener(KIND, label, [udp], options=options)
    from pounce.plugins.http3.router import Router

    key = os.urandom(16)
    options["route_key"] = key.hex()
    router = Router(udp, key)
    router.start()
    return Listener(KIND, label, [udp, router.worker_end], options=options, on_close=router.stop)


def _routed(config: ServerConfig) -> bool:
    """Whether more than one process or thread will serve the UDP socket:
    several workers, or the reload plugin, whose old and new server
    overlap while the old one drains."""
    from pounce.core.server import resolve_workers

    return resolve_workers(config.workers) > 1 or bool(config.section("reload").get("enabled"))


@hookimpl
def pounce_serve_listeners(worker: Any, listeners: list[Listener]) -> Any:
    from pounce.plugins.http3.endpoint import QuicEndpoint

    served = []
    for listener in listeners:
        if listener.kind != KIND:
            continue
        settings = H3Settings.from_options(listener.options)
        endpoint = QuicEndpoint(worker, listener, settings)
        endpoint.start()
        served.append(endpoint)
        advertise(worker.ctx, settings.port, settings.alt_svc_max_age)
    return served


def advertise(ctx: Any, port: int, max_age: int) -> None:
    """Alt-Svc among the worker's default headers: every HTTP/1.1 and
    HTTP/2 response carries it, rendered once a second with Date."""
    value = f'h3=":{port}"; ma={max_age}'.encode("ascii")
    extra = ctx.default_headers.extra
    if (b"alt-svc", value) not in extra:
        extra.append((b"alt-svc", value))
        ctx.update_date()


def _tcp_address(sockets: list[socket.socket]) -> tuple[str | None, int]:
    """The address and port of the first TCP listener (an inherited ``fd``
    included), or (None, 0)."""
    for sock in sockets:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            name = sock.getsockname()
            return str(name[0]), int(name[1])
    return None, 0


def bind_udp(host: str, port: int) -> socket.socket:
    """The UDP socket HTTP/3 is served on (dual-stack on the IPv6 wildcard)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(f"could not bind UDP {host}:{port} for HTTP/3: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6 and host in ("::", ""):
            try:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except OSError:
                pass
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, UDP_BUFFER)
            except OSError:
                pass
        sock.bind(address)
    except OSError as exc:
        sock.close()
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise BindError(f"could not bind UDP {format_host(host)}:{port} for HTTP/3: {reason}") from None
    sock.setblocking(False)
    return sock
