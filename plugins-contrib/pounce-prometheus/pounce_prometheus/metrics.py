"""The metric objects. Imported only after ``pounce_configure`` has decided
on multiprocess mode, because prometheus_client chooses how it stores values
when it is first imported."""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values


class Metrics:
    """Every metric pounce-prometheus exports, in one registry (or, in
    multiprocess mode, in per-process files merged at scrape time)."""

    def __init__(self) -> None:
        self.multiprocess = values.ValueClass is not values.MutexValue and bool(
            os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        )
        # Multiprocess mode: metrics live in files, not in a registry.
        self.registry: CollectorRegistry | None = None if self.multiprocess else CollectorRegistry()
        reg: Any = self.registry
        labels = ("method", "status")
        self.requests = Counter("pounce_requests", "HTTP responses sent, by method and status.",
                                labels, registry=reg)
        self.duration = Histogram("pounce_request_duration_seconds",
                                  "Time from request to the end of the response.", labels, registry=reg)
        self.response_bytes = Counter("pounce_response_body_bytes",
                                      "Response body bytes sent, by method and status.", labels, registry=reg)
        self.in_flight = Gauge("pounce_requests_in_flight", "HTTP requests being handled now.",
                               registry=reg, multiprocess_mode="livesum")
        self.worker_in_flight = Gauge("pounce_worker_requests_in_flight",
                                      "HTTP requests being handled now, per worker.", ("worker",),
                                      registry=reg, multiprocess_mode="livesum")
        self.worker_requests = Counter("pounce_worker_requests", "HTTP responses sent, per worker.",
                                       ("worker",), registry=reg)
        self.worker_start = Gauge("pounce_worker_start_time_seconds",
                                  "Unix time the worker started accepting.", ("worker",),
                                  registry=reg, multiprocess_mode="livemax")
        self.worker_pid = Gauge("pounce_worker_pid", "Process id of the worker.", ("worker",),
                                registry=reg, multiprocess_mode="livemax")

    def children(self, method: str, status: str) -> tuple[Any, Any, Any]:
        """The labelled children for one (method, status), looked up once."""
        return (self.requests.labels(method, status), self.duration.labels(method, status),
                self.response_bytes.labels(method, status))

    def worker_started(self, worker: str) -> None:
        self.worker_start.labels(worker).set(time.time())
        self.worker_pid.labels(worker).set(os.getpid())
        # Make the per-worker series visible before the first request.
        self.worker_in_flight.labels(worker).set(0)
        self.worker_requests.labels(worker)

    def render(self) -> bytes:
        """The text exposition of every metric, merged over processes."""
        if self.registry is not None:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
