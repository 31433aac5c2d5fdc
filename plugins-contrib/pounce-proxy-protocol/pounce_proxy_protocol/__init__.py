"""pounce-proxy-protocol: the HAProxy PROXY protocol (v1 and v2) for pounce.

Behind a TCP load balancer (HAProxy ``send-proxy``/``send-proxy-v2``, AWS NLB
proxy protocol, ...) every connection comes from the balancer. The balancer
sends a PROXY header first that names the real client; this plugin reads it
from trusted peers and presents that client to the app as ``scope["client"]``.

Enable with ``[plugins] enable = ["proxy_protocol"]``. Options live in
``[proxy_protocol]``. Only public hooks are used: options, ``pounce_configure``
for validation and ``pounce_wrap_protocol`` for the connection wrapper.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from pounce import ConfigError, hookimpl
from pounce_proxy_protocol.connection import ProxyProtocolReader, Settings, Trust
from pounce_proxy_protocol.parser import ProxyHeader, ProxyHeaderError, parse, v1_header, v2_header

name = "proxy_protocol"

try:
    __version__ = metadata.version("pounce-proxy-protocol")
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

SECTION = "proxy_protocol"


@hookimpl
def pounce_add_options(options: Any) -> None:
    options.add(SECTION, "trusted", "list", ["127.0.0.1", "::1", "unix"],
                'Peers whose PROXY header is believed: addresses, CIDR networks, "unix", or "*".',
                cli="--proxy-protocol-trusted", metavar="IPS")
    options.add(SECTION, "required", "bool", True,
                "Close connections from trusted peers that send no PROXY header; "
                "false serves them as plain connections.",
                cli="--proxy-protocol-required")
    options.add(SECTION, "timeout", "float", 0.0,
                "Seconds a trusted peer has to send the header; 0 means [http] timeout_request_header.",
                min=0)


@hookimpl
def pounce_configure(config: Any) -> None:
    where = f"{config.source}: " if getattr(config, "source", None) else ""
    for entry in config.get(SECTION, "trusted") or ():
        try:
            Trust([entry])
        except ValueError:
            raise ConfigError(
                f'{where}[{SECTION}] trusted: expected IP addresses, CIDR networks, "unix" or "*", '
                f"found {entry!r}"
            ) from None
    if config.get("tls", "certfile"):
        raise ConfigError(
            f"{where}[{SECTION}] cannot be combined with [tls] certfile: the PROXY header arrives "
            "before the TLS handshake; terminate TLS at the balancer or disable the plugin"
        )


def settings_from(config: Any) -> Settings:
    timeout = config.get(SECTION, "timeout") or config.get("http", "timeout_request_header") or 10.0
    return Settings(Trust(config.get(SECTION, "trusted") or ()), bool(config.get(SECTION, "required")),
                    float(timeout))


@hookimpl
def pounce_wrap_protocol(config: Any, factory: Any) -> Any:
    """Once per worker: every connection first meets a PROXY header reader."""
    settings = settings_from(config)

    def proxy_protocol_factory() -> ProxyProtocolReader:
        return ProxyProtocolReader(factory, settings)

    return proxy_protocol_factory


@hookimpl
def pounce_banner(config: Any) -> str:
    trusted = ", ".join(config.get(SECTION, "trusted") or ()) or "nobody"
    required = "required" if config.get(SECTION, "required") else "optional"
    return f"PROXY protocol v1/v2 ({required}) from: {trusted}"


__all__ = ["ProxyHeader", "ProxyHeaderError", "parse", "v1_header", "v2_header"]
