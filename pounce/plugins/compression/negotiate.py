"""``Accept-Encoding`` negotiation (RFC 9110 12.5.3), shared by the
``compression`` plugin (which coding to compress a response with) and the
``static`` plugin (which precompressed sibling to send).

Clients send one of a handful of exact header values (every Chromium the
same, every curl the same), so the answer per header value is cached: per
request the cost is one dict lookup.
"""

from __future__ import annotations

from collections.abc import Sequence

# Spellings some clients still send for the codings pounce knows.
_ALIASES = {"x-gzip": "gzip"}

# Distinct header values remembered; past that the cache starts over (a client
# sending a new value on every request must not grow memory).
_CACHE_SIZE = 256


def parse_accept_encoding(value: str) -> dict[str, float]:
    """``{coding: q}`` from a header value; ``*`` is kept as a key.

    Items that do not parse (a bad ``q``, an empty name) are skipped, as the
    RFC lets a server ignore what it does not understand.
    """
    weights: dict[str, float] = {}
    for item in value.split(","):
        name, _, params = item.partition(";")
        name = name.strip().lower()
        if not name:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, raw = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(raw.strip())
                except ValueError:
                    q = -1.0
                break
        if not 0.0 <= q <= 1.0:
            continue
        name = _ALIASES.get(name, name)
        weights[name] = max(q, weights.get(name, 0.0))
    return weights


def choose(weights: dict[str, float], offered: Sequence[str]) -> str | None:
    """The coding to use among ``offered`` (in server preference order), or
    None for no coding at all.

    A coding is acceptable with a q above 0, from its own entry or else from
    ``*``. The highest q wins; equal q goes to the server's order. An
    explicit ``identity`` entry with a higher q than every coding means the
    client would rather not have compression.
    """
    star = weights.get("*", 0.0)
    best: str | None = None
    best_q = 0.0
    for name in offered:
        q = weights.get(name, star)
        if q > best_q:
            best, best_q = name, q
    if best is not None and weights.get("identity", 0.0) > best_q:
        return None
    return best


class Negotiator:
    """``negotiator(header_value) -> coding or None`` for a fixed offer."""

    __slots__ = ("offered", "_cache")

    def __init__(self, offered: Sequence[str]) -> None:
        self.offered = tuple(offered)
        self._cache: dict[bytes, str | None] = {}

    def __call__(self, header: bytes) -> str | None:
        cache = self._cache
        try:
            return cache[header]
        except KeyError:
            pass
        coding = choose(parse_accept_encoding(header.decode("latin-1")), self.offered)
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[header] = coding
        return coding
