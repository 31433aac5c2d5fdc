"""The ``request_id`` plugin (and ``[logging] server_timing``) with real
clients: ids generated or taken from trusted peers, where they show up
(scope state, response header, access log, JSON records), unique across
worker processes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import opsapps
import pytest
from websockets.sync.client import connect

from pounce.plugins.request_id import MAX_LENGTH

GENERATED = re.compile(r"^[0-9a-f]{12}-[0-9a-f]+$")


def test_generated_ids_reach_the_app_and_the_response(serve: Any) -> None:
    server = serve(opsapps.app, request_id_enabled=True)
    seen = []
    with httpx.Client() as client:
        for _ in range(20):
            response = client.get(server.url + "/")
            body = response.json()
            assert response.headers["x-request-id"] == body["request_id"]
            seen.append(body["request_id"])
    assert all(GENERATED.match(rid) for rid in seen), seen
    assert len(set(seen)) == 20
    # One worker: one prefix, a counter after it.
    assert len({rid.split("-")[0] for rid in seen}) == 1


def test_off_by_default(serve: Any) -> None:
    server = serve(opsapps.app)
    response = httpx.get(server.url + "/", headers={"x-request-id": "from-client"})
    assert response.json()["request_id"] is None
    assert "x-request-id" not in response.headers


@pytest.mark.parametrize(("overrides", "trusted"), [
    ({}, True),                                                    # 127.0.0.1 is trusted by default
    ({"forwarded_allow_ips": ["10.0.0.0/8"]}, False),
    ({"proxy_headers": False}, True),                              # the client itself is the peer
    ({"proxy_headers": False, "forwarded_allow_ips": ["10.0.0.1"]}, False),
    ({"forwarded_allow_ips": ["*"]}, True),
])
def test_incoming_id_only_from_trusted_peers(serve: Any, overrides: dict[str, Any], trusted: bool) -> None:
    server = serve(opsapps.app, request_id_enabled=True, **overrides)
    response = httpx.get(server.url + "/", headers={"X-Request-ID": "edge-7f3a"})
    rid = response.json()["request_id"]
    assert response.headers["x-request-id"] == rid
    if trusted:
        assert rid == "edge-7f3a"
    else:
        assert GENERATED.match(rid), rid


def test_trusted_through_a_proxy_that_rewrote_the_client(serve: Any) -> None:
    """Behind a trusted proxy the scope's client is the real (untrusted)
    client, yet the proxy's id is kept: trust is about the peer."""
    server = serve(opsapps.app, request_id_enabled=True)
    body = httpx.get(server.url + "/", headers={
        "X-Forwarded-For": "203.0.113.9", "X-Request-ID": "nginx-abc"}).json()
    assert body["client"] == "203.0.113.9"
    assert body["request_id"] == "nginx-abc"


@pytest.mark.parametrize("value", ["has space", "x" * (MAX_LENGTH + 1), "tab\there", "é"])
def test_unusable_incoming_ids_are_replaced(serve: Any, value: str) -> None:
    server = serve(opsapps.app, request_id_enabled=True)
    response = httpx.get(server.url + "/", headers={"X-Request-ID": value.encode("utf-8")})
    assert response.status_code == 200
    assert GENERATED.match(response.json()["request_id"])


def test_custom_header_name(serve: Any) -> None:
    server = serve(opsapps.app, request_id_enabled=True, request_id_header="X-Correlation-ID")
    response = httpx.get(server.url + "/", headers={"X-Correlation-ID": "corr-1", "X-Request-ID": "no"})
    assert response.json()["request_id"] == "corr-1"
    assert response.headers["x-correlation-id"] == "corr-1"
    assert "x-request-id" not in response.headers


def test_the_app_own_header_is_not_doubled(serve: Any) -> None:
    server = serve(opsapps.sets_own_request_id, request_id_enabled=True)
    response = httpx.get(server.url + "/")
    assert response.headers.get_list("x-request-id") == ["from-app"]


def test_websocket_handshake_gets_an_id(serve: Any) -> None:
    server = serve(opsapps.app, request_id_enabled=True)
    with connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=5) as ws:
        sent = ws.response.headers["x-request-id"]
        assert ws.recv(timeout=5) == sent
    assert GENERATED.match(sent)


@pytest.mark.slow
def test_unique_across_worker_processes(pounce_process: Any) -> None:
    proc = pounce_process("opsapps:app", "--port", "0", "--workers", "2", "--worker-mode", "process",
                          "--request-id", "--no-access-log")
    ids, pids = [], set()
    for _ in range(300):
        with httpx.Client() as client:  # a connection each, to reach both workers
            body = client.get(proc.url + "/", headers={"connection": "close"}).json()
        ids.append(body["request_id"])
        pids.add(body["pid"])
        if len(pids) == 2 and len(ids) >= 50:
            break
    assert len(pids) == 2, "the kernel never handed a connection to the second worker"
    assert len(set(ids)) == len(ids)
    assert len({rid.split("-")[0] for rid in ids}) == 2


def test_access_log_and_json_records_carry_the_id(pounce_process: Any, tmp_path: Path) -> None:
    proc = pounce_process("opsapps:app", "--port", "0", "--request-id", "--log-format", "json",
                          "--forwarded-allow-ips", "127.0.0.1")
    with httpx.Client() as client:
        given = client.get(proc.url + "/a", headers={"X-Request-ID": "req-42"})
        generated = client.get(proc.url + "/b")
        boom = client.get(proc.url + "/boom")
    assert given.status_code == 200 and boom.status_code == 500
    assert proc.stop() == 0
    records = [json.loads(line) for line in proc.output().splitlines() if line.startswith("{")]
    access = {r["path"]: r for r in records if r["logger"] == "pounce.access"}
    assert access["/a"]["request_id"] == "req-42"
    assert access["/b"]["request_id"] == generated.headers["x-request-id"]
    boom_id = boom.headers["x-request-id"]
    assert access["/boom"]["request_id"] == boom_id
    errors = [r for r in records if r["logger"] == "pounce.worker" and r["level"] == "error"]
    assert errors and errors[0]["request_id"] == boom_id, errors
    # Records outside any request have no id.
    assert all("request_id" not in r for r in records if r["logger"] == "pounce.server")


def test_text_access_log_field(pounce_process: Any) -> None:
    # access_log_format has no flag: set it through the environment.
    env = {"POUNCE_LOGGING_ACCESS_LOG_FORMAT": "rid=%(request_id)s %(path)s"}
    proc = pounce_process("opsapps:app", "--port", "0", "--request-id", env=env)
    rid = httpx.get(proc.url + "/x").headers["x-request-id"]
    assert proc.stop() == 0
    assert f"rid={rid} /x" in proc.output()


def test_server_timing(serve: Any) -> None:
    server = serve(opsapps.app, logging_server_timing=True)
    plain = serve(opsapps.app)
    response = httpx.get(server.url + "/slow", params={"s": "0.2"}, timeout=10)
    match = re.fullmatch(r"app;dur=(\d+\.\d{3})", response.headers["server-timing"])
    assert match, response.headers
    assert 200.0 <= float(match.group(1)) < 5000.0
    assert "server-timing" not in httpx.get(plain.url + "/").headers
