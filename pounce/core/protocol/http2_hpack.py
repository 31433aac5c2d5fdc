"""HPACK with memory: the same header block, in the same table state, codes
the same way, so it is coded once.

A connection's responses repeat their headers (status, content type, server,
date for a whole second) and a client's requests repeat theirs; once those
fields are in the dynamic table, a block is only references to it, and
coding it neither needs the coder's work nor changes the table. The two
wrappers here sit where h2 keeps its coders (``H2Connection.encoder`` and
``.decoder``) and remember such blocks: an entry is stored only when coding
it left the table as it was, and used only while the table is still in that
state (its newest entry, its length, its size and, decoding, the limits).
Anything else goes to hpack unchanged. ``tests/unit/test_http2_hpack.py``
checks, on random header sequences, that both give exactly hpack's bytes
and headers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hpack import Decoder, Encoder

__all__ = ["CachingDecoder", "CachingEncoder"]

# Blocks remembered per connection (then the memory starts again).
CACHE_SIZE = 32


def _table_state(table: Any) -> tuple[Any, int, int, bool]:
    entries = table.dynamic_entries
    return (entries[0] if entries else None, len(entries), table.maxsize, table.resized)


class CachingEncoder:
    """hpack's Encoder, remembering blocks that left its table unchanged."""

    __slots__ = ("_encoder", "_table", "_cache")

    def __init__(self, encoder: Encoder | None = None) -> None:
        self._encoder = encoder or Encoder()
        self._table = self._encoder.header_table
        self._cache: dict[tuple[Any, ...], tuple[tuple[Any, int, int, bool], bytes]] = {}

    @property
    def header_table_size(self) -> int:
        return self._encoder.header_table_size

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        self._encoder.header_table_size = value

    def encode(self, headers: Iterable[Any], huffman: bool = True) -> bytes:
        key = tuple(headers)
        for field in key:
            if type(field) is not tuple:  # a HeaderTuple (never-indexed...): not remembered
                return self._encoder.encode(key, huffman)
        state = _table_state(self._table)
        hit = self._cache.get(key)
        if hit is not None and hit[0][0] is state[0] and hit[0][1:] == state[1:] and huffman:
            return hit[1]
        data = self._encoder.encode(key, huffman)
        after = _table_state(self._table)
        if after[0] is state[0] and after[1:] == state[1:] and huffman:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = (state, data)
        return data


class CachingDecoder:
    """hpack's Decoder, remembering blocks that left its table unchanged."""

    __slots__ = ("_decoder", "_table", "_cache")

    def __init__(self, decoder: Decoder | None = None) -> None:
        self._decoder = decoder or Decoder()
        self._table = self._decoder.header_table
        self._cache: dict[bytes, tuple[tuple[Any, ...], list[Any]]] = {}

    # The attributes h2 reads and sets on its decoder.
    @property
    def max_header_list_size(self) -> int:
        return self._decoder.max_header_list_size

    @max_header_list_size.setter
    def max_header_list_size(self, value: int) -> None:
        self._decoder.max_header_list_size = value

    @property
    def max_allowed_table_size(self) -> int:
        return self._decoder.max_allowed_table_size

    @max_allowed_table_size.setter
    def max_allowed_table_size(self, value: int) -> None:
        self._decoder.max_allowed_table_size = value

    @property
    def header_table_size(self) -> int:
        return self._decoder.header_table_size

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        self._decoder.header_table_size = value

    def _state(self) -> tuple[Any, ...]:
        decoder = self._decoder
        return (*_table_state(self._table), decoder.max_header_list_size, decoder.max_allowed_table_size)

    def decode(self, data: bytes, raw: bool = False) -> list[Any]:
        if not raw:
            return list(self._decoder.decode(data, raw))
        key = bytes(data)
        state = self._state()
        hit = self._cache.get(key)
        if hit is not None and hit[0][0] is state[0] and hit[0][1:] == state[1:]:
            return list(hit[1])
        headers = list(self._decoder.decode(key, raw))
        after = self._state()
        if after[0] is state[0] and after[1:] == state[1:]:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = (state, headers)
            return list(headers)
        return headers
