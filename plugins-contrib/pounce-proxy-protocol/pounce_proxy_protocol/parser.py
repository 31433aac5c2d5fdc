"""Sans-I/O parser for the HAProxy PROXY protocol, versions 1 and 2.

Bytes in, a :class:`ProxyHeader` out; no socket appears here, so every case
is tested with bytes alone. The format is HAProxy's ``proxy-protocol.txt``:

- v1 is one text line, at most 107 bytes with its CRLF:
  ``PROXY TCP4 <src> <dst> <srcport> <dstport>\\r\\n`` (or ``TCP6``, or
  ``UNKNOWN`` with anything after it).
- v2 is binary: a 12-byte signature, a version/command byte, a
  family/transport byte, a 16-bit length, then the addresses and optional
  TLVs (skipped here).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
V1_MAX = 107

Address = tuple[str, int]


class ProxyHeaderError(ValueError):
    """The connection does not start with a valid PROXY header."""


class MissingHeader(ProxyHeaderError):
    """The first bytes are not a PROXY header at all (plain HTTP, say)."""


@dataclass(frozen=True)
class ProxyHeader:
    """What the load balancer told us about the connection.

    ``source`` is the real client; it is None for v1 ``UNKNOWN``, a v2
    ``LOCAL`` command (health checks from the balancer itself) and address
    families other than TCP over IPv4/IPv6: then the socket's own peer stands.
    """

    version: int
    source: Address | None
    destination: Address | None


def parse(data: bytes) -> tuple[ProxyHeader, int] | None:
    """Parse a PROXY header at the start of ``data``.

    Returns ``(header, consumed)``, or None when more bytes are needed.
    Raises :class:`MissingHeader` when ``data`` cannot start a header and
    :class:`ProxyHeaderError` when it starts one that is malformed.
    """
    if not data:
        return None
    if V2_SIGNATURE.startswith(data[:12]):
        return None if len(data) < 16 else _parse_v2(data)
    if V1_PREFIX.startswith(data[:6]):
        return None if len(data) < 6 else _parse_v1(data)
    raise MissingHeader("the connection does not start with a PROXY header")


def _parse_v1(data: bytes) -> tuple[ProxyHeader, int] | None:
    end = data.find(b"\r\n", 0, V1_MAX)
    if end == -1:
        if len(data) >= V1_MAX or b"\n" in data[:V1_MAX]:
            raise ProxyHeaderError("PROXY v1 line is not terminated by CRLF within 107 bytes")
        return None
    line = data[:end]
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise ProxyHeaderError("PROXY v1 line is not ASCII") from None
    parts = text.split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return ProxyHeader(1, None, None), end + 2
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(f"malformed PROXY v1 line: {text[:60]!r}")
    version = 4 if parts[1] == "TCP4" else 6
    source = (_v1_ip(parts[2], version), _v1_port(parts[4]))
    destination = (_v1_ip(parts[3], version), _v1_port(parts[5]))
    return ProxyHeader(1, source, destination), end + 2


def _v1_ip(text: str, version: int) -> str:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise ProxyHeaderError(f"PROXY v1: bad address {text[:45]!r}") from None
    if ip.version != version:
        raise ProxyHeaderError(f"PROXY v1: {text!r} is not an IPv{version} address")
    return str(ip)


def _v1_port(text: str) -> int:
    if not text.isdigit() or (len(text) > 1 and text[0] == "0") or int(text) > 65535:
        raise ProxyHeaderError(f"PROXY v1: bad port {text[:8]!r}")
    return int(text)


def _parse_v2(data: bytes) -> tuple[ProxyHeader, int] | None:
    if data[:12] != V2_SIGNATURE:
        raise ProxyHeaderError("bad PROXY v2 signature")
    ver_cmd, fam, length = struct.unpack_from("!BBH", data, 12)
    if ver_cmd >> 4 != 2:
        raise ProxyHeaderError(f"PROXY v2: unsupported version {ver_cmd >> 4}")
    command = ver_cmd & 0x0F
    if command not in (0, 1):
        raise ProxyHeaderError(f"PROXY v2: unknown command {command}")
    total = 16 + length
    if len(data) < total:
        return None
    if command == 0:  # LOCAL: the balancer's own connection (health check)
        return ProxyHeader(2, None, None), total
    family, transport = fam >> 4, fam & 0x0F
    block = data[16:total]
    if family == 1 and transport in (1, 2):
        if length < 12:
            raise ProxyHeaderError("PROXY v2: IPv4 address block too short")
        src, dst, sport, dport = struct.unpack_from("!4s4sHH", block)
        return ProxyHeader(2, (str(ipaddress.IPv4Address(src)), sport),
                           (str(ipaddress.IPv4Address(dst)), dport)), total
    if family == 2 and transport in (1, 2):
        if length < 36:
            raise ProxyHeaderError("PROXY v2: IPv6 address block too short")
        src, dst, sport, dport = struct.unpack_from("!16s16sHH", block)
        return ProxyHeader(2, (str(ipaddress.IPv6Address(src)), sport),
                           (str(ipaddress.IPv6Address(dst)), dport)), total
    if family in (0, 3):  # UNSPEC or unix: nothing an ASGI client tuple can hold
        return ProxyHeader(2, None, None), total
    raise ProxyHeaderError(f"PROXY v2: unknown address family {family}")


def v1_header(source: Address, destination: Address) -> bytes:
    """Build a v1 line (for tests and for clients that speak to a balancer)."""
    kind = "TCP6" if ":" in source[0] else "TCP4"
    return f"PROXY {kind} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n".encode("ascii")


def v2_header(source: Address | None, destination: Address | None, tlvs: bytes = b"") -> bytes:
    """Build a v2 header; ``source=None`` gives a LOCAL command."""
    if source is None or destination is None:
        return V2_SIGNATURE + struct.pack("!BBH", 0x20, 0x00, len(tlvs)) + tlvs
    src = ipaddress.ip_address(source[0])
    dst = ipaddress.ip_address(destination[0])
    fam = 0x11 if src.version == 4 else 0x21
    block = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1]) + tlvs
    return V2_SIGNATURE + struct.pack("!BBH", 0x21, fam, len(block)) + block
