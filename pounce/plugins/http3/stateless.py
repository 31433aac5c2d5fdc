"""Answers to a client that has no connection: they keep no state.

* **Retry** (``[http3] retry``, RFC 9000 section 8.1.2): the first Initial
  of a client gets a Retry packet with a token, an AES-GCM sealed note of
  the client's address, the IDs and the time; only an Initial that brings
  the token back from the same address creates a connection. A flood from
  spoofed addresses then costs one small reply per packet and no memory.
* **Refusal**: over ``max_connections``, or while the worker drains, an
  Initial gets CONNECTION_CLOSE with CONNECTION_REFUSED, so the client falls
  back to TCP (Alt-Svc is only a hint) instead of retrying into a timeout.
* **Version negotiation** for a version aioquic does not speak, only for
  datagrams of full Initial size (RFC 9000 section 6.1), so that it never
  answers more bytes than it got.
"""

from __future__ import annotations

import ipaddress
import os
import struct
import time
from typing import Any

from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE
from aioquic.quic.connection import TRANSPORT_CLOSE_FRAME_CAPACITY
from aioquic.quic.crypto import CryptoPair
from aioquic.quic.packet import (
    QuicFrameType,
    QuicPacketType,
    encode_quic_retry,
    encode_quic_version_negotiation,
)
from aioquic.quic.packet_builder import QuicPacketBuilder

__all__ = ["RetryTokens", "close_initial", "retry_packet", "version_negotiation"]

# A client answers a Retry at once: tokens are good for a few seconds only.
TOKEN_LIFETIME = 10.0
_NONCE = 12


def _address(addr: Any) -> bytes:
    return ipaddress.ip_address(addr[0]).packed + struct.pack("!H", addr[1])


class RetryTokens:
    """Seals and opens Retry tokens with a key made per worker."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(AESGCM.generate_key(bit_length=128))

    def seal(self, addr: Any, original_cid: bytes, retry_cid: bytes) -> bytes:
        plain = (struct.pack("!dB", time.time(), len(original_cid)) + original_cid + retry_cid)
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, plain, _address(addr))

    def open(self, addr: Any, destination_cid: bytes, token: bytes) -> bytes | None:
        """The original destination ID if ``token`` is one of ours, for this
        address, for the ID the client now sends to, and fresh; else None."""
        from cryptography.exceptions import InvalidTag

        if len(token) <= _NONCE:
            return None
        try:
            plain = self._aead.decrypt(token[:_NONCE], token[_NONCE:], _address(addr))
        except (InvalidTag, ValueError):
            return None
        issued, length = struct.unpack_from("!dB", plain)
        original, retry_cid = plain[9:9 + length], plain[9 + length:]
        if retry_cid != destination_cid or not 0 <= time.time() - issued <= TOKEN_LIFETIME:
            return None
        return original


def retry_packet(header: Any, retry_cid: bytes, token: bytes) -> bytes:
    return encode_quic_retry(
        version=header.version, source_cid=retry_cid, destination_cid=header.source_cid,
        original_destination_cid=header.destination_cid, retry_token=token,
    )


def version_negotiation(header: Any, versions: list[int]) -> bytes:
    return encode_quic_version_negotiation(
        source_cid=header.destination_cid, destination_cid=header.source_cid, supported_versions=versions,
    )


def close_initial(header: Any, error_code: int) -> bytes:
    """An Initial packet that closes the connection the client is opening
    (its Initial keys come from the ID it chose, so no state is needed)."""
    crypto = CryptoPair()
    crypto.setup_initial(cid=header.destination_cid, is_client=False, version=header.version)
    builder = QuicPacketBuilder(
        host_cid=header.destination_cid, is_client=False, max_datagram_size=SMALLEST_MAX_DATAGRAM_SIZE,
        peer_cid=header.source_cid, version=header.version,
    )
    builder.start_packet(QuicPacketType.INITIAL, crypto)
    buf = builder.start_frame(QuicFrameType.TRANSPORT_CLOSE, capacity=TRANSPORT_CLOSE_FRAME_CAPACITY)
    buf.push_uint_var(error_code)
    buf.push_uint_var(QuicFrameType.PADDING)  # the frame type that caused it: none
    buf.push_uint_var(0)  # no reason phrase
    datagrams, _ = builder.flush()
    return datagrams[0]
