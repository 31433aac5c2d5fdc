"""The ASGI ``tls`` extension for a connection, computed once per connection.

``HttpProtocol.connection_made`` calls :func:`tls_extension` after the
handshake; the resulting dict is copied into every request's (and WebSocket
handshake's) ``scope["extensions"]["tls"]``. Field meanings follow the ASGI
TLS extension 0.2: ``tls_version`` and ``cipher_suite`` are the integers the
TLS RFCs assign (``0x0304``, ``0x1301``), not OpenSSL's names.

What does not change per connection is computed once: the version table, the
OpenSSL-name → IANA-number cipher table, and the server certificate's PEM per
``SSLContext`` (which Python cannot read back from a context, so the code that
builds the context registers it with :func:`register_server_cert`).
"""

from __future__ import annotations

import ssl
import threading
import weakref
from typing import Any

TLS_VERSIONS: dict[str, int] = {
    "SSLv3": 0x0300,
    "TLSv1": 0x0301,
    "TLSv1.1": 0x0302,
    "TLSv1.2": 0x0303,
    "TLSv1.3": 0x0304,
}

# RFC 4514 section 3: the attribute types that have a short name; Python's
# getpeercert() reports the long OpenSSL names.
_SHORT_NAMES: dict[str, str] = {
    "commonName": "CN",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}

_server_certs: weakref.WeakKeyDictionary[ssl.SSLContext, str] = weakref.WeakKeyDictionary()
_cipher_ids: dict[str, int] = {}
_lock = threading.Lock()


def register_server_cert(context: ssl.SSLContext, pem: str | None) -> None:
    """Remember the PEM certificate ``context`` presents, for ``server_cert``.

    Plugins that build their own context may call this; without it
    ``server_cert`` is None, which the spec allows.
    """
    with _lock:
        if pem:
            _server_certs[context] = pem
        else:
            _server_certs.pop(context, None)


def cipher_suite_id(name: str, context: ssl.SSLContext | None = None) -> int | None:
    """The 16-bit IANA number of an OpenSSL cipher name, or None if unknown.

    The table is built once per process from every cipher OpenSSL knows; a
    name missing from it is looked up in ``context`` and remembered.
    """
    if not _cipher_ids:
        _fill_cipher_table(None)
    found = _cipher_ids.get(name)
    if found is None and context is not None:
        _fill_cipher_table(context)
        found = _cipher_ids.get(name)
    return found


def _fill_cipher_table(context: ssl.SSLContext | None) -> None:
    if context is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
        except ssl.SSLError:  # pragma: no cover - depends on the OpenSSL build
            pass
    table = {c["name"]: c["id"] & 0xFFFF for c in context.get_ciphers()}
    with _lock:
        _cipher_ids.update(table)


def rfc4514_name(subject: Any) -> str | None:
    """``getpeercert()["subject"]`` as an RFC 4514 string (last RDN first)."""
    if not subject:
        return None
    rdns: list[str] = []
    for rdn in reversed(subject):
        parts = [f"{_SHORT_NAMES.get(attr, attr)}={_escape(str(value))}" for attr, value in rdn]
        rdns.append("+".join(parts))
    return ",".join(rdns)


def _escape(value: str) -> str:
    out: list[str] = []
    last = len(value) - 1
    for i, ch in enumerate(value):
        if ch in ',+"\\<>;' or (i == 0 and ch in " #") or (i == last and ch == " "):
            out.append("\\" + ch)
        elif ch == "\x00":
            out.append("\\00")
        else:
            out.append(ch)
    return "".join(out)


def _client_chain(ssl_object: ssl.SSLObject) -> list[str]:
    """PEM certificates the client sent, its own first.

    Python 3.13+ exposes the whole chain the peer sent; older versions only
    the peer's own certificate. The leaf from ``getpeercert`` is the anchor:
    some versions return another type, leave the leaf out on the server side
    or nothing at all for a resumed session, and this stays right for all.
    """
    leaf = ssl_object.getpeercert(binary_form=True)
    if not leaf:
        return []
    chain: list[bytes] = []
    get_chain = getattr(ssl_object, "get_unverified_chain", None)
    if get_chain is not None:
        try:
            for cert in get_chain() or ():
                chain.append(cert if isinstance(cert, bytes) else cert.public_bytes(ssl._ssl.ENCODING_DER))  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - the leaf alone is still right
            chain = []
    if not chain or chain[0] != leaf:
        chain = [leaf, *(der for der in chain if der != leaf)]
    return [ssl.DER_cert_to_PEM_cert(der) for der in chain]


def tls_extension(ssl_object: ssl.SSLObject) -> dict[str, Any]:
    """``scope["extensions"]["tls"]`` per the ASGI TLS extension."""
    chain = _client_chain(ssl_object)
    name = None
    if chain:
        peer = ssl_object.getpeercert()
        name = rfc4514_name(peer.get("subject")) if peer else None
    cipher = ssl_object.cipher()
    version = ssl_object.version()
    context = ssl_object.context
    return {
        "server_cert": _server_certs.get(context),
        "client_cert_chain": chain,
        "client_cert_name": name,
        # A certificate that fails verification fails the handshake, so a
        # connection that got here never has a verification error to report.
        "client_cert_error": None,
        "tls_version": TLS_VERSIONS.get(version) if version else None,
        "cipher_suite": cipher_suite_id(cipher[0], context) if cipher else None,
    }
