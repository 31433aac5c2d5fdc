"""The ASGI wrapper: one server span and two metrics per HTTP request.

Follows the OpenTelemetry HTTP semantic conventions (stable since 1.23):

- span name ``{method}`` (pounce knows no route; ``HTTP`` for methods outside
  the standard nine), kind SERVER, parent from the incoming trace context
  (``traceparent``/``tracestate`` through the global propagator, so
  ``OTEL_PROPAGATORS`` applies);
- attributes ``http.request.method`` (``_OTHER`` plus
  ``http.request.method_original`` for unknown methods), ``url.scheme``,
  ``url.path``, ``url.query``, ``http.response.status_code``,
  ``network.protocol.name``/``version``, ``client.address``/``port`` (the
  real client, after proxy trust), ``network.peer.address`` (the trusted
  proxy, when there is one), ``server.address``/``port`` (from ``Host``),
  ``user_agent.original``, ``http.request.body.size`` (its
  ``Content-Length``) and ``http.response.body.size``;
- status ERROR and ``error.type`` for a 5xx or an exception (recorded as a
  span event); a 4xx is the client's error, not the server's;
- metrics ``http.server.request.duration`` (histogram, seconds, the
  recommended buckets) and ``http.server.active_requests`` (up-down counter).

Propagation into the scope: the span is the current span while the app
runs (``trace.get_current_span()`` in the app is it), and the scope's
``traceparent``/``tracestate`` headers are rewritten to point at it, so a
framework's own instrumentation, which extracts from the headers, makes its
spans children of this one rather than siblings.
"""

from __future__ import annotations

import time
from typing import Any

_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"})
_PROPAGATION_HEADERS = frozenset({b"traceparent", b"tracestate"})
# The semantic conventions' advice for http.server.request.duration.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


class _HeaderGetter:
    """Reads a propagation field from a carrier dict already built from the
    ASGI headers (only the two trace-context fields are copied into it)."""

    def get(self, carrier: dict[str, str], key: str) -> list[str] | None:
        value = carrier.get(key)
        return [value] if value is not None else None

    def keys(self, carrier: dict[str, str]) -> list[str]:
        return list(carrier)


def _host_port(value: str, default_port: int | None) -> tuple[str, int | None]:
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or not port_text.isdigit():
            host, port_text = value, ""
    return host, int(port_text) if port_text.isdigit() else default_port


def make_wrapper(app: Any, tracer: Any, meter: Any, exclude_paths: frozenset[str]) -> Any:
    """Once per worker: the wrapper around ``app``."""
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    from pounce.core.asgi.proxy import TRUSTED_PEER_KEY

    duration = meter.create_histogram(
        "http.server.request.duration", unit="s", description="Duration of HTTP server requests.",
        explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
    active = meter.create_up_down_counter(
        "http.server.active_requests", unit="{request}", description="Number of active HTTP server requests.")
    getter = _HeaderGetter()
    extract, inject = propagate.extract, propagate.inject
    start_span, set_span_in_context = tracer.start_span, trace.set_span_in_context
    attach, detach = otel_context.attach, otel_context.detach
    server_kind = SpanKind.SERVER
    error_status = Status(StatusCode.ERROR)
    clock = time.perf_counter

    async def opentelemetry_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in exclude_paths:
            await app(scope, receive, send)
            return
        started = clock()
        method_original = scope["method"]
        method = method_original if method_original in _METHODS else "_OTHER"
        scheme = scope["scheme"]
        carrier: dict[str, str] = {}
        host = user_agent = content_length = None
        for key, value in scope["headers"]:
            if key in _PROPAGATION_HEADERS:
                carrier[key.decode("latin-1")] = value.decode("latin-1")
            elif key == b"host":
                host = value.decode("latin-1")
            elif key == b"user-agent":
                user_agent = value.decode("latin-1")
            elif key == b"content-length":
                content_length = value
        parent = extract(carrier, getter=getter) if carrier else None
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.scheme": scheme,
            "url.path": scope["path"],
        }
        span = start_span("HTTP" if method == "_OTHER" else method, context=parent, kind=server_kind,
                          attributes=attributes)
        recording = span.is_recording()
        if recording:
            extra: dict[str, Any] = {
                "network.protocol.name": "http",
                "network.protocol.version": scope.get("http_version", "1.1"),
            }
            query = scope.get("query_string")
            if query:
                extra["url.query"] = query.decode("latin-1")
            if method == "_OTHER":
                extra["http.request.method_original"] = method_original
            client = scope.get("client")
            if client:
                extra["client.address"] = client[0]
                if client[1]:
                    extra["client.port"] = client[1]
            if TRUSTED_PEER_KEY in scope and scope[TRUSTED_PEER_KEY]:
                extra["network.peer.address"] = scope[TRUSTED_PEER_KEY][0]
            if host:
                server_address, server_port = _host_port(host, 443 if scheme == "https" else 80)
                extra["server.address"] = server_address
                if server_port is not None:
                    extra["server.port"] = server_port
            if user_agent is not None:
                extra["user_agent.original"] = user_agent
            if content_length is not None and content_length.isdigit():
                extra["http.request.body.size"] = int(content_length)
            span.set_attributes(extra)
        context = set_span_in_context(span, parent)
        # Hand the trace on through the scope: frameworks extract from headers.
        outgoing: dict[str, str] = {}
        inject(outgoing, context=context)
        if outgoing or carrier:
            headers = [(k, v) for k, v in scope["headers"] if k not in _PROPAGATION_HEADERS]
            headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in outgoing.items())
            scope["headers"] = headers
        active_attributes = {"http.request.method": method, "url.scheme": scheme}
        active.add(1, active_attributes)
        status = 0
        sent = 0

        async def send_observed(message: dict[str, Any]) -> None:
            nonlocal status, sent
            kind = message["type"]
            if kind == "http.response.body":
                sent += len(message.get("body", b""))
            elif kind == "http.response.start":
                status = message["status"]
            await send(message)

        token = attach(context)
        error_type = None
        try:
            await app(scope, receive, send_observed)
        except BaseException as exc:
            error_type = type(exc).__qualname__
            if recording:
                span.record_exception(exc)
            if not status:
                status = 500  # what the server sends for an app that raised first
            raise
        finally:
            detach(token)
            metric_attributes: dict[str, Any] = {
                "http.request.method": method,
                "url.scheme": scheme,
                "network.protocol.name": "http",
                "network.protocol.version": scope.get("http_version", "1.1"),
            }
            if status:
                metric_attributes["http.response.status_code"] = status
            if error_type is None and status >= 500:
                error_type = str(status)
            if error_type is not None:
                metric_attributes["error.type"] = error_type
            if recording:
                if status:
                    span.set_attribute("http.response.status_code", status)
                span.set_attribute("http.response.body.size", sent)
                if error_type is not None:
                    span.set_attribute("error.type", error_type)
                    span.set_status(error_status)
            span.end()
            active.add(-1, active_attributes)
            duration.record(clock() - started, metric_attributes)

    return opentelemetry_app


__all__ = ["DURATION_BUCKETS", "make_wrapper"]
