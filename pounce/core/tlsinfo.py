"""The ASGI ``tls`` extension for a connection, computed once per connection."""

from __future__ import annotations

import ssl
from typing import Any


def tls_extension(ssl_object: ssl.SSLObject) -> dict[str, Any]:
    """``scope["extensions"]["tls"]`` per the ASGI TLS extension."""
    cert = ssl_object.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(cert)] if cert else []
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": None,
        "cipher_suite": None,
    }
