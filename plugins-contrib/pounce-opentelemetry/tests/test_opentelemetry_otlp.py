"""pounce-opentelemetry as a user runs it: the ``pounce`` command with two
worker processes, the SDK configured only by ``OTEL_*`` variables, and the
real OTLP/HTTP exporter sending to a small receiver this test runs."""

from __future__ import annotations

import gzip
import os
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from pounce.testing import ServerProcess

pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="needs pounce-opentelemetry[otlp]")
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
REQUESTS = 40  # at least; more until both workers have answered

APP = '''
import os

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
'''


class Receiver:
    """An OTLP/HTTP endpoint: keeps every decoded export request."""

    def __init__(self) -> None:
        self.traces: list[Any] = []
        self.metrics: list[Any] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path == "/v1/traces":
                    message: Any = ExportTraceServiceRequest.FromString(body)
                    target = receiver.traces
                elif self.path == "/v1/metrics":
                    message = ExportMetricsServiceRequest.FromString(body)
                    target = receiver.metrics
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                with receiver.lock:
                    target.append(message)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) for every span received."""
        out = []
        with self.lock:
            for request in self.traces:
                for resource_spans in request.resource_spans:
                    resource = _attributes(resource_spans.resource.attributes)
                    for scope_spans in resource_spans.scope_spans:
                        out.extend((resource, span) for span in scope_spans.spans)
        return out

    def duration_counts(self) -> dict[int, int]:
        """Latest cumulative http.server.request.duration count per process."""
        counts: dict[int, int] = {}
        with self.lock:
            for request in self.metrics:
                for resource_metrics in request.resource_metrics:
                    pid = _attributes(resource_metrics.resource.attributes)["process.pid"]
                    for scope_metrics in resource_metrics.scope_metrics:
                        for metric in scope_metrics.metrics:
                            if metric.name == "http.server.request.duration":
                                total = sum(p.count for p in metric.histogram.data_points)
                                counts[pid] = max(counts.get(pid, 0), total)
        return counts


def _attributes(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        value = item.value
        kind = value.WhichOneof("value")
        out[item.key] = getattr(value, kind) if kind else None
    return out


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()
    r.thread.join(5)


def run_workers(tmp_path: Path, receiver: Receiver, sampler: str) -> tuple[set[int], int, int]:
    """Serve requests with two worker processes until both answered (at
    least REQUESTS), then stop; the worker pids, the main pid, the count."""
    (tmp_path / "otelapp.py").write_text(APP)
    (tmp_path / "pounce.toml").write_text(textwrap.dedent("""
        [server]
        app = "otelapp:app"
        port = 0
        workers = 2
        worker_mode = "process"

        [plugins]
        enable = ["opentelemetry"]
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POUNCE_", "OTEL_"))}
    env.update({
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_SERVICE_NAME": "pounce-otlp-test",
        "OTEL_TRACES_SAMPLER": sampler,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_METRIC_EXPORT_INTERVAL": "60000",  # exported at the flush on exit
    })
    pids: set[int] = set()
    with ServerProcess(["--config", "pounce.toml", "--app-dir", str(tmp_path)], cwd=tmp_path, env=env) as proc:
        assert proc.url is not None
        main_pid = proc.proc.pid  # type: ignore[union-attr]
        assert "opentelemetry: traces to otlp, metrics to otlp" in proc.output()
        n = 0
        while n < REQUESTS or (len(pids) < 2 and n < 300):
            with httpx.Client(timeout=10) as client:  # a connection each, to reach both workers
                response = client.get(proc.url + "/", headers={
                    "traceparent": f"00-{TRACE_ID}-{n + 1:016x}-01", "connection": "close"})
            assert response.status_code == 200
            pids.add(int(response.text))
            n += 1
        assert proc.stop() == 0, proc.output()
    assert len(pids) == 2, "the kernel never handed a connection to the second worker"
    return pids, main_pid, n


@pytest.mark.slow
def test_spans_and_metrics_from_each_worker_process(tmp_path: Path, receiver: Receiver) -> None:
    pids, main_pid, sent = run_workers(tmp_path, receiver, "parentbased_always_on")
    spans = receiver.spans()
    assert len(spans) == sent, f"{len(spans)} spans received for {sent} requests"
    parents = set()
    for resource, span in spans:
        assert resource["service.name"] == "pounce-otlp-test"
        assert span.name == "GET" and span.kind == span.SPAN_KIND_SERVER
        assert span.trace_id.hex() == TRACE_ID
        parents.add(int.from_bytes(span.parent_span_id, "big"))
        attributes = _attributes(span.attributes)
        assert attributes["http.response.status_code"] == 200
        assert attributes["url.path"] == "/"
    assert parents == set(range(1, sent + 1))
    span_pids = {resource["process.pid"] for resource, _ in spans}
    # Set up in each worker process after it started, never in the supervisor.
    assert span_pids == pids and main_pid not in span_pids
    assert sum(receiver.duration_counts().values()) == sent


@pytest.mark.slow
def test_sampling_off_by_environment(tmp_path: Path, receiver: Receiver) -> None:
    pids, _, sent = run_workers(tmp_path, receiver, "always_off")
    assert receiver.spans() == []
    counts = receiver.duration_counts()
    assert set(counts) == pids and sum(counts.values()) == sent
