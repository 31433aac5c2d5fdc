"""Built-in plugin ``tls``: HTTPS and WSS from the ``[tls]`` section.

Inert until ``certfile`` is set.
"""

from __future__ import annotations

import ssl
from typing import Any

from pounce import hookimpl

name = "tls"


@hookimpl
def pounce_add_options(options: Any) -> None:
    add = options.add
    add("tls", "certfile", "str", None, "PEM certificate chain file (may hold the key too).",
        cli="--ssl-certfile", nullable=True, metavar="PATH")
    add("tls", "keyfile", "str", None, "PEM private key file.", cli="--ssl-keyfile", nullable=True,
        metavar="PATH")
    add("tls", "keyfile_password", "str", None, "Password of an encrypted key file.",
        cli="--ssl-keyfile-password", nullable=True)
    add("tls", "ca_certs", "str", None, "CA bundle used to verify client certificates.",
        cli="--ssl-ca-certs", nullable=True, metavar="PATH")
    add("tls", "cert_reqs", "str", "none", "Client certificates: none | optional | required (or 0/1/2).",
        cli="--ssl-cert-reqs", choices=("none", "optional", "required"),
        aliases={"0": "none", "1": "optional", "2": "required", 0: "none", 1: "optional", 2: "required"})
    add("tls", "ciphers", "str", None, "OpenSSL cipher string for TLS 1.2 and below.",
        cli="--ssl-ciphers", nullable=True)
    add("tls", "minimum_version", "str", "TLSv1.2", "Lowest TLS version accepted.",
        cli="--ssl-minimum-version", choices=("TLSv1.2", "TLSv1.3"))


@hookimpl
def pounce_tls_context(config: Any) -> ssl.SSLContext | None:
    tls = config.section("tls")
    if not tls.get("certfile"):
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls["certfile"], tls.get("keyfile"), tls.get("keyfile_password"))
    return context
