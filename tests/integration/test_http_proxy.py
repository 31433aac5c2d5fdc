"""Proxy headers (X-Forwarded-*, RFC 7239 Forwarded) honoured only from
forwarded_allow_ips, and root_path, on a real pounce."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

import testapps


def scope_of(srv: Any, headers: dict[str, str] | None = None, path: str = "/") -> dict[str, Any]:
    response = httpx.get(srv.url + path, headers=headers or {})
    assert response.status_code == 200
    return response.json()


def host_header(scope: dict[str, Any]) -> list[str]:
    return [v for n, v in scope["headers"] if n == "host"]


def test_x_forwarded_from_trusted_peer(serve: Any) -> None:
    srv = serve(testapps.echo_scope, lifespan="off")  # default: 127.0.0.1 trusted
    scope = scope_of(srv, {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
                           "X-Forwarded-Host": "shop.example"})
    assert scope["client"] == ["203.0.113.7", 0]
    assert scope["scheme"] == "https"
    assert host_header(scope) == ["shop.example"]


def test_x_forwarded_ignored_from_untrusted_peer(serve: Any) -> None:
    srv = serve(testapps.echo_scope, lifespan="off", forwarded_allow_ips=["10.0.0.0/8"])
    scope = scope_of(srv, {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
                           "X-Forwarded-Host": "shop.example"})
    assert scope["client"][0] == "127.0.0.1" and scope["client"][1] > 0
    assert scope["scheme"] == "http"
    assert host_header(scope) != ["shop.example"]


def test_proxy_headers_off(serve: Any) -> None:
    srv = serve(testapps.echo_scope, lifespan="off", proxy_headers=False)
    scope = scope_of(srv, {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"})
    assert scope["client"][0] == "127.0.0.1" and scope["scheme"] == "http"


@pytest.mark.parametrize("allowed", [["127.0.0.0/8"], ["*"], ["192.168.0.0/16", "127.0.0.1"]])
def test_cidr_and_star(serve: Any, allowed: list[str]) -> None:
    srv = serve(testapps.echo_scope, lifespan="off", forwarded_allow_ips=allowed)
    assert scope_of(srv, {"X-Forwarded-For": "198.51.100.1"})["client"][0] == "198.51.100.1"


def test_spoofed_left_entries_are_not_believed(serve: Any) -> None:
    """The client wrote "1.1.1.1" itself; the trusted proxy appended the
    address it really saw. The right-most untrusted hop is the client."""
    srv = serve(testapps.echo_scope, lifespan="off")
    scope = scope_of(srv, {"X-Forwarded-For": "1.1.1.1, 203.0.113.7"})
    assert scope["client"][0] == "203.0.113.7"
    # With the next hop trusted as well, the walk goes one further left.
    srv2 = serve(testapps.echo_scope, lifespan="off", forwarded_allow_ips=["127.0.0.1", "203.0.113.0/24"])
    assert scope_of(srv2, {"X-Forwarded-For": "1.1.1.1, 203.0.113.7"})["client"][0] == "1.1.1.1"


def test_rfc7239_forwarded(serve: Any) -> None:
    srv = serve(testapps.echo_scope, lifespan="off")
    scope = scope_of(srv, {"Forwarded": 'for=192.0.2.60;proto=https;host="shop.example", for=127.0.0.1',
                           "X-Forwarded-For": "9.9.9.9"})
    assert scope["client"] == ["192.0.2.60", 0]  # Forwarded wins over X-Forwarded-For
    assert scope["scheme"] == "https" and host_header(scope) == ["shop.example"]
    scope = scope_of(srv, {"Forwarded": 'For="[2001:db8:cafe::17]:4711";Proto=http'})
    assert scope["client"] == ["2001:db8:cafe::17", 4711] and scope["scheme"] == "http"


def test_unix_socket_peers(serve: Any, tmp_path: Path) -> None:
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    plain = serve(testapps.echo_scope, lifespan="off", uds=str(tmp_path / "a.sock"))
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(tmp_path / "a.sock"))) as client:
        scope = client.get("http://local/", headers=headers).json()
    assert scope["client"] is None and scope["scheme"] == "http"  # unix peers are not trusted by default
    assert plain is not None

    serve(testapps.echo_scope, lifespan="off", uds=str(tmp_path / "b.sock"), forwarded_allow_ips=["unix"])
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(tmp_path / "b.sock"))) as client:
        scope = client.get("http://local/", headers=headers).json()
    assert scope["client"] == ["203.0.113.9", 0] and scope["scheme"] == "https"
    assert scope["server"][1] is None and scope["server"][0].endswith("b.sock")


def test_root_path(serve: Any) -> None:
    srv = serve(testapps.echo_scope, lifespan="off", root_path="/api")
    scope = scope_of(srv, path="/items?x=1")
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/items" and scope["raw_path"] == "/api/items"
    assert scope["query_string"] == "x=1"
