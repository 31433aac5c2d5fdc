"""Built-in plugin ``rate_limit``: a token bucket per client, 429 beyond it.

Off until ``[rate_limit] rate`` is above zero; then each worker keeps one
bucket per client address (after proxy trust: the ``client`` the core put in
the scope, which behind a trusted proxy is the real client). A bucket holds
up to ``burst`` tokens and refills at ``rate`` tokens a second; a request
takes one, and a request that finds none gets ``429 Too Many Requests`` with
``Retry-After`` (whole seconds until a token is back) without reaching the
app. WebSocket handshakes count too (denied with 429 where the client
supports the denial response, else closed with 403).

Bounded memory: at most ``max_clients`` buckets per worker, least recently
seen forgotten first (an ``OrderedDict`` used as an LRU; a forgotten client
starts again with a full bucket). IPv6 clients are grouped by their
``ipv6_prefix`` (a /64 is usually one subscriber, who could otherwise walk
through 2**64 addresses).

Per worker, on purpose: the buckets live in the worker's own memory, touched
only by its event loop, so a request pays for one dict lookup and a little
arithmetic, never a lock or a round trip. With N workers a client is
allowed between ``rate`` (all its requests land on one worker, as on one
keep-alive connection) and N times ``rate`` (its connections spread evenly).
Divide by N when the limit must hold for the whole server, or put the limit
in a shared front proxy.
"""

from __future__ import annotations

import collections
import ipaddress
import math
import time
from collections.abc import Callable
from typing import Any

from pounce import hookimpl
from pounce.plugins._options import check_paths

name = "rate_limit"
SECTION = "rate_limit"

_BODY = b"Too Many Requests\n"


@hookimpl
def pounce_add_options(options: Any) -> None:
    add = options.add
    add(SECTION, "rate", "float", 0.0,
        "Requests per second allowed per client, per worker (token bucket refill rate); 0: off.",
        cli="--rate-limit", min=0, metavar="PER_SECOND")
    add(SECTION, "burst", "int", 0,
        "Requests a client may send at once (bucket size); 0: the rate rounded up, at least 1.",
        cli="--rate-limit-burst", min=0)
    add(SECTION, "max_clients", "int", 10000,
        "Clients tracked per worker; beyond it the least recently seen is forgotten (bounded memory).",
        min=1)
    add(SECTION, "exempt_paths", "list", [],
        'Path prefixes never limited, e.g. ["/healthz", "/static/"] (the health plugin\'s paths '
        "are answered before the limit anyway).",
        cli="--rate-limit-exempt", metavar="PREFIXES", validator=check_paths)
    add(SECTION, "ipv6_prefix", "int", 64,
        "IPv6 clients sharing this many leading bits share one bucket.", min=1, max=128)


def effective_burst(rate: float, burst: int) -> int:
    return burst if burst > 0 else max(1, math.ceil(rate))


def make_bucket_taker(rate: float, burst: int, max_clients: int,
                      clock: Callable[[], float] = time.monotonic) -> Callable[[Any], float]:
    """``take(key)``: 0.0 when the client may go on (a token was taken), else
    the seconds until its next token. One worker's buckets, one thread."""
    buckets: collections.OrderedDict[Any, list[float]] = collections.OrderedDict()
    move_to_end = buckets.move_to_end
    capacity = float(burst)

    def take(key: Any) -> float:
        now = clock()
        bucket = buckets.get(key)
        if bucket is None:
            if len(buckets) >= max_clients:
                buckets.popitem(last=False)
            buckets[key] = [capacity - 1.0, now]
            return 0.0
        move_to_end(key)
        tokens = bucket[0] + (now - bucket[1]) * rate
        if tokens > capacity:
            tokens = capacity
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / rate

    take.buckets = buckets  # type: ignore[attr-defined]  # for tests and introspection
    return take


def make_client_key(ipv6_prefix: int) -> Callable[[Any], Any]:
    """The bucket key of a scope's ``client``: the IPv4 address as is, an
    IPv6 address cut to its prefix, None for a peer without an address."""
    shift = 128 - ipv6_prefix

    def client_key(client: Any) -> Any:
        if not client:
            return None
        host = client[0]
        if ":" not in host:
            return host
        try:
            address = ipaddress.IPv6Address(host)
        except ValueError:
            return host
        mapped = address.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        return int(address) >> shift

    return client_key


@hookimpl
def pounce_wrap_app(config: Any, app: Any) -> Any:
    """Once per worker: the limiter, or None when ``rate`` is 0."""
    section = config.section(SECTION)
    rate = float(section.get("rate", 0.0))
    if rate <= 0:
        return None
    burst = effective_burst(rate, int(section.get("burst", 0)))
    take = make_bucket_taker(rate, burst, int(section.get("max_clients", 10000)))
    client_key = make_client_key(int(section.get("ipv6_prefix", 64)))
    root = config.root_path
    exempt = tuple(root + prefix for prefix in section.get("exempt_paths", ()))

    async def rate_limit_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if (kind != "http" and kind != "websocket") or (exempt and scope["path"].startswith(exempt)):
            await app(scope, receive, send)
            return
        wait = take(client_key(scope.get("client")))
        if not wait:
            await app(scope, receive, send)
            return
        retry_after = str(max(1, math.ceil(wait))).encode("ascii")
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"retry-after", retry_after),
            (b"content-length", str(len(_BODY)).encode("ascii")),
        ]
        if kind == "http":
            await send({"type": "http.response.start", "status": 429, "headers": headers})
            await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else _BODY})
        elif "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": 429, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": _BODY})
        else:
            await send({"type": "websocket.close", "code": 1008})

    return rate_limit_app


@hookimpl
def pounce_banner(config: Any) -> str | None:
    section = config.section(SECTION)
    rate = float(section.get("rate", 0.0))
    if rate <= 0:
        return None
    burst = effective_burst(rate, int(section.get("burst", 0)))
    return f"rate limit: {rate:g}/s per client, burst {burst}, per worker"


@hookimpl
def pounce_check_warnings(config: Any) -> str | None:
    if float(config.section(SECTION).get("rate", 0.0)) <= 0:
        return None
    workers = config.workers
    if workers == "auto" or int(workers) > 1:
        n = "N" if workers == "auto" else str(workers)
        return (f"[rate_limit] is per worker: with {n} workers a client gets between rate and "
                f"{n} x rate, depending on how its connections spread")
    return None


__all__ = ["effective_burst", "make_bucket_taker", "make_client_key", "name"]
