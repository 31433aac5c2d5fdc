"""Setting up the OpenTelemetry SDK in a worker process from ``OTEL_*``.

Only what the standard environment variables ask for, and only through the
SDK's public classes:

- ``OTEL_SDK_DISABLED=true``: nothing is set up (the API's no-op providers);
- ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``: comma-separated
  exporter names, default ``otlp``; ``none`` for no exporter, ``console``,
  or any name an installed package registers in the
  ``opentelemetry_traces_exporter`` / ``opentelemetry_metrics_exporter``
  entry-point groups. ``otlp`` means ``otlp_proto_http`` (the
  ``[otlp]`` extra), or ``otlp_proto_grpc`` when
  ``OTEL_EXPORTER_OTLP_PROTOCOL`` (or its per-signal variant) says ``grpc``;
- everything else is read by the SDK itself: the sampler
  (``OTEL_TRACES_SAMPLER``, ``OTEL_TRACES_SAMPLER_ARG``), the resource
  (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``), the OTLP endpoint,
  headers and timeouts, the batch processor (``OTEL_BSP_*``) and the metric
  export interval (``OTEL_METRIC_EXPORT_INTERVAL``).

The resource also gets ``process.pid``, so that spans from different worker
processes can be told apart.
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import entry_points
from typing import Any

logger = logging.getLogger("pounce.opentelemetry")

_TRUE = ("1", "true", "yes", "on")


def sdk_disabled(environ: Any = os.environ) -> bool:
    return str(environ.get("OTEL_SDK_DISABLED", "")).strip().lower() in _TRUE


def _names(variable: str, environ: Any) -> list[str]:
    raw = environ.get(variable, "otlp")
    return [n.strip().lower() for n in raw.split(",") if n.strip()]


def _protocol(signal: str, environ: Any) -> str:
    value = environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL") or environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    return value.strip().lower()


def _exporter_classes(signal: str, environ: Any) -> list[Any]:
    """The exporter classes ``OTEL_<SIGNAL>_EXPORTER`` names, each loaded
    through the SDK's entry-point groups; unknown or missing ones are logged
    once and skipped (the server still serves, untraced)."""
    group = f"opentelemetry_{signal}_exporter"
    available = {ep.name: ep for ep in entry_points(group=group)}
    classes = []
    for name in _names(f"OTEL_{signal.upper()}_EXPORTER", environ):
        if name == "none":
            continue
        wanted = name
        if name == "otlp":
            wanted = "otlp_proto_grpc" if _protocol(signal, environ) == "grpc" else "otlp_proto_http"
        ep = available.get(wanted)
        if ep is None:
            hint = " (pip install 'pounce-opentelemetry[otlp]')" if wanted == "otlp_proto_http" else ""
            logger.warning("OTEL_%s_EXPORTER=%s: exporter %r is not installed%s; %s are not exported",
                           signal.upper(), name, wanted, hint, signal)
            continue
        try:
            classes.append(ep.load())
        except Exception as exc:  # noqa: BLE001 - a broken exporter must not stop the server
            logger.warning("OTEL_%s_EXPORTER=%s: cannot load %s: %s", signal.upper(), name, ep.value, exc)
    return classes


def resource() -> Any:
    from opentelemetry.sdk.resources import Resource

    return Resource.create({"process.pid": os.getpid()})


def build_tracer_provider(environ: Any = os.environ) -> Any:
    """An SDK tracer provider with a batch processor per configured exporter."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=resource())  # the sampler comes from OTEL_TRACES_SAMPLER
    for exporter_class in _exporter_classes("traces", environ):
        provider.add_span_processor(BatchSpanProcessor(exporter_class()))
    return provider


def build_meter_provider(environ: Any = os.environ) -> Any:
    """An SDK meter provider with a periodic reader per configured exporter."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    readers = [PeriodicExportingMetricReader(cls()) for cls in _exporter_classes("metrics", environ)]
    return MeterProvider(resource=resource(), metric_readers=readers)


def is_configured(provider: Any) -> bool:
    """Has someone (the app, ``opentelemetry-instrument``, a test) already set
    a real provider, rather than the API's default proxy?"""
    from opentelemetry import trace

    if isinstance(provider, trace.ProxyTracerProvider):
        return False
    # The metrics API's default proxy has no public name to test against.
    return type(provider).__name__ != "_ProxyMeterProvider"


__all__ = ["build_meter_provider", "build_tracer_provider", "is_configured", "sdk_disabled"]
