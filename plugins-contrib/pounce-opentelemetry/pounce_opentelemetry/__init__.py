"""pounce-opentelemetry: OpenTelemetry traces and metrics for pounce.

Enable with ``[plugins] enable = ["opentelemetry"]`` (or ``--plugin
opentelemetry``); configure the SDK with the standard ``OTEL_*`` environment
variables (see :mod:`.sdk`); what is recorded per request is in
:mod:`.middleware`.

Where things happen, and why:

- the SDK is set up in the process that serves, the first time a worker
  there builds its app (``pounce_wrap_app``): in each worker process after it
  was spawned (a batch processor's export thread and an exporter's
  connections never cross a process boundary), once for all thread workers
  of a process, never in a supervisor that only supervises;
- a provider someone else already installed (the app at import time,
  ``opentelemetry-instrument``, a test) is used as it is, and so are the
  providers given to :class:`OpenTelemetryPlugin` programmatically;
- what this plugin set up is flushed in ``pounce_unconfigure`` (each worker
  process as it ends, the main process at the very end), and shut down at
  interpreter exit by the SDK's own exit handler.

No hook runs per request: the wrapper is built once per worker.
"""

from __future__ import annotations

import logging
import os
import threading
from importlib import metadata
from typing import Any

from pounce import hookimpl
from pounce.core.options import OptionValueError

try:
    __version__ = metadata.version("pounce-opentelemetry")
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

SECTION = "opentelemetry"
logger = logging.getLogger("pounce.opentelemetry")


def _check_paths(values: tuple[str, ...]) -> None:
    for value in values:
        if not value.startswith("/"):
            raise OptionValueError('a list of paths starting with "/"')


class _ProcessSetup:
    """The providers of this process, made at most once (thread workers race)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pid: int | None = None
        self.tracer_provider: Any = None
        self.meter_provider: Any = None
        self.owned: list[Any] = []

    def providers(self, use_sdk: bool) -> tuple[Any, Any]:
        from opentelemetry import metrics, trace

        from pounce_opentelemetry import sdk

        with self.lock:
            if self.pid == os.getpid():
                return self.tracer_provider, self.meter_provider
            self.pid = os.getpid()
            self.owned = []
            tracer_provider = trace.get_tracer_provider()
            meter_provider = metrics.get_meter_provider()
            can_build = use_sdk and not sdk.sdk_disabled()
            if not sdk.is_configured(tracer_provider) and can_build:
                tracer_provider = sdk.build_tracer_provider()
                trace.set_tracer_provider(tracer_provider)
                self.owned.append(tracer_provider)
            if not sdk.is_configured(meter_provider) and can_build:
                meter_provider = sdk.build_meter_provider()
                metrics.set_meter_provider(meter_provider)
                self.owned.append(meter_provider)
            self.tracer_provider, self.meter_provider = tracer_provider, meter_provider
            return tracer_provider, meter_provider

    def flush(self) -> None:
        with self.lock:
            owned = list(self.owned) if self.pid == os.getpid() else []
        for provider in owned:
            try:
                provider.force_flush(5000)
            except Exception as exc:  # noqa: BLE001 - an exporter failing must not fail the exit
                logger.warning("opentelemetry: flushing %s failed: %s", type(provider).__name__, exc)


_process = _ProcessSetup()


class OpenTelemetryPlugin:
    """The plugin. ``plugin`` (below) is the instance the entry point names;
    make your own to hand it providers: ``Server(config, app,
    plugins=[OpenTelemetryPlugin(tracer_provider=tp, meter_provider=mp)])``."""

    name = "opentelemetry"

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider

    @hookimpl
    def pounce_add_options(self, options: Any) -> None:
        options.add(SECTION, "sdk", "bool", True,
                    "Set up the OpenTelemetry SDK from the OTEL_* environment variables in each "
                    "serving process, unless a provider is already installed.")
        options.add(SECTION, "exclude_paths", "list", [],
                    'Paths that get no span and no metrics, e.g. ["/healthz", "/readyz"].',
                    cli="--otel-exclude", metavar="PATHS", validator=_check_paths)

    @hookimpl(tryfirst=True)
    def pounce_wrap_app(self, config: Any, app: Any) -> Any:
        """Once per worker: outermost wrapper, so the span covers the other
        plugins' wrappers too."""
        from opentelemetry import metrics, trace

        from pounce_opentelemetry.middleware import make_wrapper

        section = config.section(SECTION)
        tracer_provider, meter_provider = self.tracer_provider, self.meter_provider
        if tracer_provider is None or meter_provider is None:
            global_tracer, global_meter = _process.providers(bool(section.get("sdk", True)))
            tracer_provider = tracer_provider or global_tracer
            meter_provider = meter_provider or global_meter
        tracer = trace.get_tracer("pounce", __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter("pounce", __version__, meter_provider=meter_provider)
        exclude = frozenset(config.root_path + p for p in section.get("exclude_paths", ()))
        return make_wrapper(app, tracer, meter, exclude)

    @hookimpl
    def pounce_banner(self, config: Any) -> str:
        from pounce_opentelemetry.sdk import sdk_disabled

        if self.tracer_provider is not None:
            return "opentelemetry: traces and metrics to the providers given to the plugin"
        if not config.section(SECTION).get("sdk", True) or sdk_disabled():
            return "opentelemetry: SDK not set up here (an installed provider is used if there is one)"
        traces = os.environ.get("OTEL_TRACES_EXPORTER", "otlp")
        metrics = os.environ.get("OTEL_METRICS_EXPORTER", "otlp")
        return f"opentelemetry: traces to {traces}, metrics to {metrics} (SDK set up in each worker process)"

    @hookimpl
    def pounce_unconfigure(self, config: Any) -> None:
        _process.flush()
        for provider in (self.tracer_provider, self.meter_provider):
            flush = getattr(provider, "force_flush", None)
            if flush is not None:
                flush(5000)


plugin = OpenTelemetryPlugin()

__all__ = ["OpenTelemetryPlugin", "__version__", "plugin"]
