"""Compatibility: the TLS helpers moved to :mod:`pounce.core.transport.tls`."""

from pounce.core.transport.tls import register_server_cert, tls_extension

__all__ = ["register_server_cert", "tls_extension"]
