"""pounce-opentelemetry against a real server in this process, with the SDK's
in-memory span exporter and metric reader handed to the plugin."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode
from pounce_opentelemetry import OpenTelemetryPlugin

from pounce.testing import ServerThread

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"

RELEASE = threading.Event()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Says which traceparent it saw in the scope and which span is current."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/boom":
        raise RuntimeError("boom")
    if scope["path"] == "/wait":
        deadline = time.monotonic() + 10
        while not RELEASE.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    status = 503 if scope["path"] == "/unavailable" else 404 if scope["path"] == "/missing" else 200
    current = trace.get_current_span().get_span_context()
    traceparent = next((v.decode() for k, v in scope["headers"] if k == b"traceparent"), None)
    body = json.dumps({"traceparent": traceparent, "current_span": format(current.span_id, "016x"),
                       "current_trace": format(current.trace_id, "032x")}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def parse_traceparent(value: str) -> tuple[str, str, bool]:
    """(trace id, parent id, sampled); other flag bits (W3C level 2's
    random-trace-id flag) are left out."""
    version, trace_id, parent_id, flags = value.split("-")
    assert version == "00"
    return trace_id, parent_id, bool(int(flags, 16) & 1)


class Telemetry:
    def __init__(self, sampler: Any = None) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(sampler=sampler) if sampler else TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.plugin = OpenTelemetryPlugin(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider)

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found = []
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    t = Telemetry()
    yield t
    t.tracer_provider.shutdown()
    t.meter_provider.shutdown()


def serve(t: Telemetry, **overrides: Any) -> ServerThread:
    return ServerThread(app, plugins=[t.plugin], **overrides)


def test_a_server_span_per_request(telemetry: Telemetry) -> None:
    with serve(telemetry) as server, httpx.Client() as client:
        response = client.get(server.url + "/items?page=2", headers={"user-agent": "otel-test/1"})
        client.post(server.url + "/missing", content=b"12345")
    assert response.status_code == 200
    first, second = telemetry.spans.get_finished_spans()
    assert first.name == "GET" and first.kind is SpanKind.SERVER
    attributes = dict(first.attributes)
    assert attributes["http.request.method"] == "GET"
    assert attributes["url.scheme"] == "http"
    assert attributes["url.path"] == "/items" and attributes["url.query"] == "page=2"
    assert attributes["http.response.status_code"] == 200
    assert attributes["network.protocol.name"] == "http"
    assert attributes["network.protocol.version"] == "1.1"
    assert attributes["client.address"] == "127.0.0.1" and isinstance(attributes["client.port"], int)
    assert attributes["server.address"] == "127.0.0.1" and attributes["server.port"] == server.port
    assert attributes["user_agent.original"] == "otel-test/1"
    assert attributes["http.response.body.size"] == len(response.content)
    # A 4xx is not the server's error.
    assert second.name == "POST" and second.attributes["http.response.status_code"] == 404
    assert second.attributes["http.request.body.size"] == 5
    assert second.status.status_code is StatusCode.UNSET


def test_trace_context_is_continued_and_handed_to_the_app(telemetry: Telemetry) -> None:
    with serve(telemetry) as server:
        seen = httpx.get(server.url + "/", headers={"traceparent": TRACEPARENT, "tracestate": "k=v"}).json()
    (span,) = telemetry.spans.get_finished_spans()
    context = span.get_span_context()
    assert format(context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_ID
    own = format(context.span_id, "016x")
    # The app runs inside the server span...
    assert seen["current_span"] == own and seen["current_trace"] == TRACE_ID
    # ...and the scope's traceparent now names it, for frameworks that extract from headers.
    assert parse_traceparent(seen["traceparent"]) == (TRACE_ID, own, True)


def test_a_new_trace_without_incoming_context(telemetry: Telemetry) -> None:
    with serve(telemetry) as server:
        seen = httpx.get(server.url + "/").json()
    (span,) = telemetry.spans.get_finished_spans()
    assert span.parent is None
    expected = (format(span.context.trace_id, "032x"), format(span.context.span_id, "016x"), True)
    assert parse_traceparent(seen["traceparent"]) == expected


def test_server_errors_and_exceptions(telemetry: Telemetry) -> None:
    with serve(telemetry) as server, httpx.Client() as client:
        assert client.get(server.url + "/unavailable").status_code == 503
        assert client.get(server.url + "/boom").status_code == 500
    unavailable, boom = telemetry.spans.get_finished_spans()
    assert unavailable.status.status_code is StatusCode.ERROR
    assert unavailable.attributes["error.type"] == "503"
    assert boom.status.status_code is StatusCode.ERROR
    assert boom.attributes["error.type"] == "RuntimeError"
    assert boom.attributes["http.response.status_code"] == 500
    assert [event.name for event in boom.events] == ["exception"]


def test_request_metrics(telemetry: Telemetry) -> None:
    RELEASE.clear()
    with serve(telemetry) as server, httpx.Client() as client:
        for _ in range(3):
            client.get(server.url + "/")
        waiting = threading.Thread(target=lambda: httpx.get(server.url + "/wait", timeout=15))
        waiting.start()
        deadline = time.monotonic() + 10
        while not any(p.value == 1 for p in telemetry.points("http.server.active_requests")):
            assert time.monotonic() < deadline, "the waiting request never showed as active"
            time.sleep(0.02)
        RELEASE.set()
        waiting.join(15)
    (active,) = telemetry.points("http.server.active_requests")
    assert active.value == 0
    assert dict(active.attributes) == {"http.request.method": "GET", "url.scheme": "http"}
    (durations,) = telemetry.points("http.server.request.duration")
    assert durations.count == 4
    assert dict(durations.attributes) == {
        "http.request.method": "GET", "url.scheme": "http", "http.response.status_code": 200,
        "network.protocol.name": "http", "network.protocol.version": "1.1",
    }
    assert list(durations.explicit_bounds)[:3] == [0.005, 0.01, 0.025]


def test_sampling_off_still_propagates_and_measures() -> None:
    t = Telemetry(sampler=ALWAYS_OFF)
    try:
        with serve(t) as server:
            seen = httpx.get(server.url + "/", headers={"traceparent": TRACEPARENT.replace("-01", "-00")}).json()
        assert t.spans.get_finished_spans() == ()
        # The trace goes on, unsampled, with a span id of its own.
        trace_id, span_id, sampled = parse_traceparent(seen["traceparent"])
        assert trace_id == TRACE_ID and span_id != PARENT_ID and not sampled
        (durations,) = t.points("http.server.request.duration")
        assert durations.count == 1
    finally:
        t.tracer_provider.shutdown()
        t.meter_provider.shutdown()


def test_excluded_paths(telemetry: Telemetry) -> None:
    with serve(telemetry, opentelemetry_exclude_paths=["/healthz"], health_path="/healthz") as server:
        assert httpx.get(server.url + "/healthz").status_code == 200
        assert httpx.get(server.url + "/").status_code == 200
    assert [s.attributes["url.path"] for s in telemetry.spans.get_finished_spans()] == ["/"]
