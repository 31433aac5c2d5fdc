"""The remembering HPACK coders (pounce.core.protocol.http2_hpack) give
exactly hpack's bytes and headers: random sequences of header blocks, coded
by both, compared block by block; table size changes mixed in."""

from __future__ import annotations

import random

import hpack
import pytest

from pounce.core.protocol.http2_hpack import CachingDecoder, CachingEncoder

NAMES = [b":status", b"content-type", b"server", b"date", b"x-a", b"cookie", b"content-length"]
VALUES = [b"200", b"404", b"text/plain", b"pounce", b"Tue, 01 Dec 2026 20:00:00 GMT", b"a" * 300, b"1", b"2"]


def blocks(rng: random.Random, count: int) -> list[list[tuple[bytes, bytes]]]:
    pool = [[(rng.choice(NAMES), rng.choice(VALUES)) for _ in range(rng.randint(1, 6))] for _ in range(8)]
    return [rng.choice(pool) for _ in range(count)]


@pytest.mark.parametrize("seed", range(20))
def test_encoder_gives_hpacks_bytes(seed: int) -> None:
    rng = random.Random(seed)
    plain, caching = hpack.Encoder(), CachingEncoder()
    for i, headers in enumerate(blocks(rng, 300)):
        if i % 97 == 50:
            size = rng.choice([0, 256, 4096])
            plain.header_table_size = size
            caching.header_table_size = size
        assert caching.encode(headers) == plain.encode(headers), i
        assert caching.header_table_size == plain.header_table_size


@pytest.mark.parametrize("seed", range(20))
def test_decoder_gives_hpacks_headers(seed: int) -> None:
    rng = random.Random(seed)
    encoder = hpack.Encoder()
    plain, caching = hpack.Decoder(), CachingDecoder()
    for i, headers in enumerate(blocks(rng, 300)):
        if i % 89 == 40:
            size = rng.choice([0, 512, 4096])
            encoder.header_table_size = size
        data = encoder.encode(headers)
        assert caching.decode(data, raw=True) == plain.decode(data, raw=True) == headers, i


def test_limits_still_apply_on_a_remembered_block() -> None:
    encoder = hpack.Encoder()
    decoder = CachingDecoder()
    block = encoder.encode([(b"x-big", b"v" * 2000)])
    again = encoder.encode([(b"x-big", b"v" * 2000)])  # now a reference: remembered
    decoder.decode(block, raw=True)
    assert decoder.decode(again, raw=True) == [(b"x-big", b"v" * 2000)]
    decoder.max_header_list_size = 1000
    with pytest.raises(hpack.OversizedHeaderListError):
        decoder.decode(again, raw=True)
