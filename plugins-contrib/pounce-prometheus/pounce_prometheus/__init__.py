"""pounce-prometheus: a Prometheus ``/metrics`` endpoint for pounce.

Enable with ``[plugins] enable = ["prometheus"]``; options in ``[prometheus]``.

How it stays off the hot path:

- counts and latencies come from a ``pounce_request_observer`` callable that
  pounce calls directly after each response (no pluggy call per request);
  label children are looked up once per (method, status) and cached;
- the in-flight gauges and the ``/metrics`` route come from one ASGI wrapper
  installed by ``pounce_wrap_app`` once per worker.

Several worker processes: prometheus_client's multiprocess mode. The main
process points ``PROMETHEUS_MULTIPROC_DIR`` at a directory in
``pounce_configure`` (before prometheus_client is imported anywhere in the
plugin, because the library picks its value storage at import time); each
worker writes its own files; a scrape on any worker merges them all. When the
supervisor sees a worker end (``pounce_worker_exit``) the live gauges of that
process are removed, while its counters and histograms keep counting in the
totals, as Prometheus expects of counters.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

from pounce import ConfigError, hookimpl

name = "prometheus"
SECTION = "prometheus"
# Marks the process that set up the multiprocess directory; worker processes
# inherit it and so know not to set it up (or delete it) again.
OWNER_ENV = "PROMETHEUS_POUNCE_OWNER"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

try:
    __version__ = metadata.version("pounce-prometheus")
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"})


class _State:
    """Per-process plugin state (one server per process at a time)."""

    def __init__(self) -> None:
        self.metrics: Any = None
        self.registry: Any = None
        self.multiprocess = False
        self.directory: str | None = None
        self.created_directory = False
        self.local = threading.local()
        self.lock = threading.Lock()


_state = _State()


@hookimpl
def pounce_add_options(options: Any) -> None:
    options.add(SECTION, "path", "str", "/metrics", "URL path that serves the metrics.",
                cli="--prometheus-path", metavar="PATH")
    options.add(SECTION, "multiprocess_dir", "str", None,
                "Directory for prometheus_client's multiprocess files; unset: a temporary one "
                "when there are several workers (PROMETHEUS_MULTIPROC_DIR is honoured too).",
                nullable=True, metavar="DIR")


@hookimpl
def pounce_configure(config: Any) -> None:
    path = config.get(SECTION, "path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigError(f"[{SECTION}] path: expected a path starting with '/', found {path!r}")
    owner = os.environ.get(OWNER_ENV)
    if owner and owner != str(os.getpid()):
        return  # a worker process: the main process prepared everything
    with _state.lock:
        _state.metrics = None  # a new server in this process counts from zero
    configured = config.get(SECTION, "multiprocess_dir")
    inherited = os.environ.get(MULTIPROC_ENV)
    if not (configured or inherited or config.workers != 1):
        return
    if configured:
        directory = str(configured)
        Path(directory).mkdir(parents=True, exist_ok=True)
        _wipe(directory)  # files of a previous run would be summed in
    elif inherited:
        directory = inherited
        Path(directory).mkdir(parents=True, exist_ok=True)
    else:
        directory = tempfile.mkdtemp(prefix="pounce-prometheus-")
        _state.created_directory = True
    _state.directory = directory
    os.environ[MULTIPROC_ENV] = directory
    os.environ[OWNER_ENV] = str(os.getpid())


def _wipe(directory: str) -> None:
    for item in Path(directory).glob("*.db"):
        item.unlink(missing_ok=True)
    for item in Path(directory).glob("pounce-worker-*.pid"):
        item.unlink(missing_ok=True)


def _metrics() -> Any:
    """Create the metric objects once per process, after configure."""
    with _state.lock:
        if _state.metrics is None:
            from pounce_prometheus.metrics import Metrics

            _state.metrics = Metrics()
            _state.multiprocess = _state.metrics.multiprocess
        return _state.metrics


def _worker_label() -> str:
    return getattr(_state.local, "worker", "0")


@hookimpl
def pounce_worker_started(worker: Any) -> None:
    """Inside the worker: remember its id for this thread, mark it alive."""
    metrics = _metrics()
    label = str(worker.worker_id)
    _state.local.worker = label
    metrics.worker_started(label)
    directory = os.environ.get(MULTIPROC_ENV)
    if metrics.multiprocess and directory:
        Path(directory, f"pounce-worker-{label}-{os.getpid()}.pid").write_text(str(os.getpid()))


@hookimpl
def pounce_worker_exit(config: Any, worker_id: int) -> None:
    """In the supervisor: drop the live gauges of worker processes that ended."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return
    from prometheus_client import multiprocess

    for pid_file in Path(directory).glob(f"pounce-worker-{worker_id}-*.pid"):
        pid = int(pid_file.name.rsplit("-", 1)[1].split(".")[0])
        if pid == os.getpid() or _alive(pid):
            continue  # thread workers share this process; it still runs
        multiprocess.mark_process_dead(pid, directory)
        pid_file.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@hookimpl
def pounce_request_observer(config: Any) -> Any:
    """Once per worker: a plain callable that counts each response."""
    metrics = _metrics()
    scrape_path = config.get(SECTION, "path")
    children: dict[tuple[str, int], Any] = {}
    per_worker: list[Any] = []

    def observe(scope: dict[str, Any], status: int, bytes_sent: int, duration_s: float) -> None:
        if scope.get("path") == scrape_path:
            return
        method = scope.get("method", "GET")
        key = (method, status)
        child = children.get(key)
        if child is None:
            label = method if method in _METHODS else "other"
            child = children[key] = metrics.children(label, str(status))
        child[0].inc()
        child[1].observe(duration_s)
        child[2].inc(bytes_sent)
        if not per_worker:
            per_worker.append(metrics.worker_requests.labels(_worker_label()))
        per_worker[0].inc()

    return observe


@hookimpl(tryfirst=True)
def pounce_wrap_app(config: Any, app: Any) -> Any:
    """Once per worker: serve the metrics path and track in-flight requests."""
    from prometheus_client import CONTENT_TYPE_LATEST

    metrics = _metrics()
    scrape_path = config.get(SECTION, "path")
    content_type = CONTENT_TYPE_LATEST.encode("latin-1")
    in_flight = metrics.in_flight
    per_worker: list[Any] = []

    async def prometheus_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        if scope["path"] == scrape_path:
            body = metrics.render()
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", content_type), (b"content-length", str(len(body)).encode("latin-1")),
            ]})
            await send({"type": "http.response.body", "body": body if scope["method"] != "HEAD" else b""})
            return
        if not per_worker:
            per_worker.append(metrics.worker_in_flight.labels(_worker_label()))
        worker_gauge = per_worker[0]
        in_flight.inc()
        worker_gauge.inc()
        try:
            await app(scope, receive, send)
        finally:
            in_flight.dec()
            worker_gauge.dec()

    return prometheus_app


@hookimpl
def pounce_banner(config: Any) -> str:
    mode = f"multiprocess in {_state.directory}" if _state.directory else "single process"
    return f"prometheus metrics at {config.get(SECTION, 'path')} ({mode})"


@hookimpl
def pounce_unconfigure(config: Any) -> None:
    """In the process that set it up: remove the temporary directory."""
    if os.environ.get(OWNER_ENV) != str(os.getpid()):
        return
    directory = _state.directory
    if directory and _state.created_directory:
        shutil.rmtree(directory, ignore_errors=True)
    if directory:
        os.environ.pop(MULTIPROC_ENV, None)
        os.environ.pop(OWNER_ENV, None)
    _state.directory = None
    _state.created_directory = False


__all__ = ["__version__", "name"]
