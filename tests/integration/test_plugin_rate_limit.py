"""The ``rate_limit`` plugin with real client bursts: the bucket, 429 with
Retry-After, one bucket per client after proxy trust, the LRU bound, exempt
prefixes, IPv6 grouping, WebSocket handshakes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import opsapps
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from pounce.plugins.rate_limit import make_bucket_taker


def burst(url: str, n: int, headers: dict[str, str] | None = None) -> list[httpx.Response]:
    """``n`` requests back to back on one keep-alive connection."""
    with httpx.Client(timeout=10) as client:
        return [client.get(url, headers=headers) for _ in range(n)]


def test_burst_then_429_with_retry_after(serve: Any) -> None:
    # 0.2 tokens a second: no token comes back while the burst runs.
    server = serve(opsapps.app, rate_limit_rate=0.2, rate_limit_burst=5)
    before = opsapps.REACHED["requests"]
    responses = burst(server.url + "/", 12)
    statuses = [r.status_code for r in responses]
    assert statuses == [200] * 5 + [429] * 7, statuses
    limited = responses[-1]
    assert limited.text == "Too Many Requests\n"
    assert 1 <= int(limited.headers["retry-after"]) <= 5
    # Refused requests never reached the app.
    assert opsapps.REACHED["requests"] - before == 5


def test_tokens_come_back_at_the_rate(serve: Any) -> None:
    server = serve(opsapps.app, rate_limit_rate=4.0, rate_limit_burst=1)
    url = server.url + "/"
    with httpx.Client(timeout=10) as client:
        assert client.get(url).status_code == 200
        refused = client.get(url)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        started = time.monotonic()
        deadline = started + 5
        while client.get(url).status_code != 200:
            assert time.monotonic() < deadline, "the bucket never refilled"
    # One token per 0.25 s: back in about that, not at once.
    assert time.monotonic() - started >= 0.1


def test_one_bucket_per_client_after_proxy_trust(serve: Any) -> None:
    server = serve(opsapps.app, rate_limit_rate=0.2, rate_limit_burst=2)
    url = server.url + "/"
    a = {"X-Forwarded-For": "198.51.100.1"}
    b = {"X-Forwarded-For": "198.51.100.2"}
    assert [r.status_code for r in burst(url, 3, a)] == [200, 200, 429]
    assert [r.status_code for r in burst(url, 3, b)] == [200, 200, 429]


def test_untrusted_forwarding_headers_do_not_make_new_clients(serve: Any) -> None:
    server = serve(opsapps.app, rate_limit_rate=0.2, rate_limit_burst=2, forwarded_allow_ips=["10.0.0.1"])
    url = server.url + "/"
    statuses = [r.status_code for r in (
        *burst(url, 2, {"X-Forwarded-For": "198.51.100.1"}),
        *burst(url, 1, {"X-Forwarded-For": "198.51.100.2"}),
    )]
    assert statuses == [200, 200, 429]


def test_lru_forgets_the_least_recently_seen(serve: Any) -> None:
    server = serve(opsapps.app, rate_limit_rate=0.2, rate_limit_burst=1, rate_limit_max_clients=3)
    url = server.url + "/"

    def one(client: str) -> int:
        return burst(url, 1, {"X-Forwarded-For": client})[0].status_code

    assert one("192.0.2.1") == 200
    assert one("192.0.2.1") == 429
    for other in ("192.0.2.2", "192.0.2.3", "192.0.2.4"):
        assert one(other) == 200
    # 192.0.2.1 was pushed out by three newer clients: it starts afresh.
    assert one("192.0.2.1") == 200
    # 192.0.2.4 is still tracked and still empty.
    assert one("192.0.2.4") == 429


def test_bucket_memory_is_bounded() -> None:
    now = [0.0]
    take = make_bucket_taker(rate=1.0, burst=2, max_clients=100, clock=lambda: now[0])
    for n in range(10_000):
        take(f"10.0.{n // 256}.{n % 256}")
        now[0] += 0.001
    assert len(take.buckets) == 100  # type: ignore[attr-defined]


def test_exempt_prefixes_and_health_paths(serve: Any) -> None:
    server = serve(opsapps.app, rate_limit_rate=0.2, rate_limit_burst=1,
                   rate_limit_exempt_paths=["/static/"], health_path="/healthz")
    base = server.url
    assert all(r.status_code == 200 for r in burst(base + "/static/app.css", 5))
    assert all(r.status_code == 200 for r in burst(base + "/healthz", 5))
    assert [r.status_code for r in burst(base + "/page", 2)] == [200, 429]


def test_ipv6_clients_share_a_bucket_per_prefix(serve: Any) -> None:
    server = serve(opsapps.app, rate_limit_rate=0.2, rate_limit_burst=1)
    url = server.url + "/"

    def one(client: str) -> int:
        return burst(url, 1, {"X-Forwarded-For": client})[0].status_code

    assert one("2001:db8::1") == 200
    assert one("2001:db8::2") == 429           # same /64
    assert one("2001:db8:0:1::1") == 200       # another /64
    assert one("::ffff:192.0.2.7") == 200      # IPv4-mapped counts as IPv4
    assert one("192.0.2.7") == 429


def test_websocket_handshakes_count(serve: Any) -> None:
    server = serve(opsapps.app, rate_limit_rate=0.2, rate_limit_burst=1)
    with connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=5) as ws:
        ws.recv(timeout=5)
    with pytest.raises(InvalidStatus) as refused:
        with connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=5):
            pass
    assert refused.value.response.status_code == 429
    assert refused.value.response.headers["retry-after"]


def test_head_gets_no_body(serve: Any) -> None:
    server = serve(opsapps.app, rate_limit_rate=0.2, rate_limit_burst=1)
    with httpx.Client() as client:
        client.head(server.url + "/")
        limited = client.head(server.url + "/")
    assert limited.status_code == 429 and limited.content == b""


def test_concurrent_burst_on_many_connections(serve: Any) -> None:
    """Twenty connections at once from one client: exactly the burst passes."""
    server = serve(opsapps.app, rate_limit_rate=0.2, rate_limit_burst=5)

    async def fire() -> list[int]:
        limits = httpx.Limits(max_connections=20, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=10, limits=limits) as client:
            responses = await asyncio.gather(*(client.get(server.url + "/") for _ in range(20)))
        return [r.status_code for r in responses]

    statuses = asyncio.run(fire())
    assert sorted(statuses) == [200] * 5 + [429] * 15, statuses
