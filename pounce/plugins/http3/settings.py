"""The ``[http3]`` section, checked once and read into :class:`H3Settings`.

Everything that can be wrong (HTTP/3 without a certificate, client
certificates required, a certificate aioquic cannot use) is a one-line
``ConfigError`` at startup and under ``pounce --check``, naming where the
value came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pounce.core.errors import ConfigError
from pounce.plugins._options import where

if TYPE_CHECKING:
    from aioquic.quic.configuration import QuicConfiguration

    from pounce.core.config import ServerConfig

# Per request stream: how far a client may send ahead of what the app has
# read. 256 KiB keeps a stream at full speed up to about 100 Mbit/s at 20 ms
# RTT; memory per connection is bounded by this times max_concurrent_streams.
STREAM_WINDOW = 256 * 1024
# The connection's initial limit across streams (aioquic doubles it as it is
# used; the per-stream windows are what bound memory).
CONNECTION_WINDOW = 1024 * 1024
# Unidirectional streams a client may open: HTTP/3 needs three (control,
# QPACK encoder and decoder); a few more for reserved "grease" types.
MAX_UNI_STREAMS = 16

_PEM_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----\s*", re.S)


@dataclass(frozen=True)
class H3Settings:
    """``[http3]`` plus what it needs from ``[server]`` and ``[tls]``."""

    host: str
    port: int  # 0: the TCP port (known after BIND)
    max_connections: int
    idle_timeout: float
    max_concurrent_streams: int
    retry: bool
    early_data: bool
    alt_svc_max_age: int
    certfile: str
    keyfile: str | None
    keyfile_password: str | None

    @classmethod
    def from_config(cls, config: ServerConfig) -> H3Settings | None:
        """The settings, or None when HTTP/3 is off."""
        section = config.section("http3")
        if not section.get("enabled"):
            return None
        tls = config.section("tls")
        certfile = tls.get("certfile")
        if not certfile:
            raise ConfigError(
                f"{where(config, 'http3', 'enabled')}: expected [tls] certfile and keyfile to be set "
                "(HTTP/3 runs over TLS 1.3 only; --ssl-certfile/--ssl-keyfile), found no [tls] certfile")
        if tls.get("cert_reqs", "none") == "required":
            raise ConfigError(
                f"{where(config, 'http3', 'enabled')}: expected [tls] cert_reqs \"none\" or \"optional\" "
                "(HTTP/3 does not ask for client certificates, so it would bypass the requirement), "
                "found \"required\"")
        if config.uds and not section.get("port"):
            raise ConfigError(
                f"{where(config, 'http3', 'port')}: expected a UDP port for HTTP/3 (the server listens "
                "on a unix socket, so there is no TCP port number to share), found 0")
        return cls(
            host=config.host,
            port=int(section.get("port", 0)),
            max_connections=int(section.get("max_connections", 1000)),
            idle_timeout=float(section.get("idle_timeout", 30.0)),
            max_concurrent_streams=int(section.get("max_concurrent_streams", 100)),
            retry=bool(section.get("retry", False)),
            early_data=bool(section.get("early_data", False)),
            alt_svc_max_age=int(section.get("alt_svc_max_age", 86400)),
            certfile=certfile,
            keyfile=tls.get("keyfile") or None,
            keyfile_password=tls.get("keyfile_password") or None,
        )

    def as_options(self) -> dict[str, Any]:
        """Plain data for :class:`~pounce.core.transport.listeners.Listener`."""
        return dict(self.__dict__)

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> H3Settings:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in options.items() if k in names})


def quic_configuration(settings: H3Settings, config: ServerConfig | None = None) -> QuicConfiguration:
    """aioquic's server configuration, certificate loaded: built once per
    worker (and once at startup, to fail early on a certificate aioquic
    cannot use, which OpenSSL may accept)."""
    from aioquic.h3.connection import H3_ALPN
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.tls import load_pem_private_key, load_pem_x509_certificates

    def fail(key: str, found: str) -> ConfigError:
        origin = where(config, "tls", key) if config is not None else f"[tls] {key}"
        return ConfigError(f"{origin}: expected a certificate and key HTTP/3 (aioquic) can use, found {found}")

    try:
        with open(settings.certfile, "rb") as handle:
            cert_data = handle.read()
        key_data = cert_data
        if settings.keyfile:
            with open(settings.keyfile, "rb") as handle:
                key_data = handle.read()
    except OSError as exc:
        raise fail("certfile", f"{exc.filename!r}: {exc.strerror}") from None
    try:
        certificates = load_pem_x509_certificates(cert_data)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the same config error
        raise fail("certfile", f"{settings.certfile!r}: {exc}") from None
    if not certificates:
        raise fail("certfile", f"no certificate in {settings.certfile!r}")
    match = _PEM_KEY.search(key_data)
    key_source = "keyfile" if settings.keyfile else "certfile"
    if match is None:
        raise fail(key_source, f"no private key in {getattr(settings, key_source)!r}")
    password = settings.keyfile_password.encode() if settings.keyfile_password else None
    try:
        private_key = load_pem_private_key(match.group(0), password=password)
    except Exception as exc:  # noqa: BLE001
        raise fail(key_source, f"{getattr(settings, key_source)!r}: {exc}") from None

    configuration = QuicConfiguration(
        alpn_protocols=list(H3_ALPN),
        is_client=False,
        idle_timeout=settings.idle_timeout,
        max_data=CONNECTION_WINDOW,
        max_stream_data=STREAM_WINDOW,
    )
    configuration.certificate = certificates[0]
    configuration.certificate_chain = certificates[1:]
    configuration.private_key = private_key
    return configuration
