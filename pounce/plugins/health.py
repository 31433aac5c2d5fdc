"""Built-in plugin ``health``: liveness and readiness that follow the drain.

Inert until configured: with ``[health] path``, ``ready_path`` and
``shutdown_delay`` all unset it installs no ASGI wrapper and does nothing at
a drain.

- ``path`` (liveness, e.g. ``/healthz``): 200 from the server itself, never
  reaching the app, as long as the worker's event loop runs.
- ``ready_path`` (readiness, e.g. ``/readyz``): 200 while the worker serves
  (its lifespan startup has completed, or it would not be accepting), and
  503 from the moment its graceful drain begins (shutdown, rolling restart,
  reload, ``max_requests`` recycling), while requests in flight go on.
- ``shutdown_delay``: a draining worker keeps accepting and serving for this
  many seconds after readiness turned 503, so a load balancer that polls
  readiness (or, in Kubernetes, drops the pod from its endpoints after
  SIGTERM) stops sending before connections are refused.

Readiness is per worker, because a drain is: each worker (thread or process)
has its own flag, set by ``pounce_worker_draining`` on that worker's own
loop. The wrapper is made by ``pounce_wrap_app`` in the thread the worker
then runs in, so the flag made there is handed to the worker in
``pounce_worker_started`` through a thread-local slot, without any lookup per
request.

Probe requests are logged at DEBUG (visible with ``--log-level debug``), not
at INFO with the other requests, unless ``[health] access_log = true``: a
probe every second would otherwise drown the access log.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from pounce import hookimpl
from pounce.plugins._options import check_path, option_error

name = "health"
SECTION = "health"

# The scope key the access log reads for a request's log level (see
# pounce.plugins.logging.ACCESS_LEVEL_KEY; repeated here so that this plugin
# works with the logging plugin disabled).
ACCESS_LEVEL_KEY = "pounce.access_log_level"

_HEADERS_OK = [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store")]


class Readiness:
    """One worker's readiness. ``ready`` is read by probes, written once by
    the drain; a plain attribute is enough (one writer, and a stale read
    costs one probe)."""

    __slots__ = ("ready", "__weakref__")

    def __init__(self) -> None:
        self.ready = False


_local = threading.local()
# worker -> its Readiness, bound in pounce_worker_started.
_bound: weakref.WeakKeyDictionary[Any, Readiness] = weakref.WeakKeyDictionary()


@hookimpl
def pounce_add_options(options: Any) -> None:
    add = options.add
    add(SECTION, "path", "str", "",
        'Liveness path, e.g. "/healthz": 200 from the server itself, never reaching the app; "": off.',
        cli="--health-path", metavar="PATH", validator=check_path)
    add(SECTION, "ready_path", "str", "",
        'Readiness path, e.g. "/readyz": 200 while the worker serves, 503 from the moment its '
        'graceful drain begins; "": off.',
        cli="--health-ready-path", metavar="PATH", validator=check_path)
    add(SECTION, "shutdown_delay", "float", 0.0,
        "Seconds a draining worker keeps accepting and serving after readiness turns 503 "
        "(the preStop pattern); counts within [server] timeout_graceful_shutdown.",
        cli="--health-shutdown-delay", min=0, metavar="SECONDS")
    add(SECTION, "access_log", "bool", False,
        "Log probe requests at info like any request (default: at debug only).")


@hookimpl
def pounce_configure(config: Any) -> None:
    section = config.section(SECTION)
    path, ready_path = section.get("path", ""), section.get("ready_path", "")
    if path and path == ready_path:
        raise option_error(config, SECTION, "ready_path", f"a path other than [health] path ({path!r})", ready_path)
    delay = section.get("shutdown_delay", 0.0)
    timeout = config.timeout_graceful_shutdown
    if delay > timeout:
        raise option_error(
            config, SECTION, "shutdown_delay",
            f"at most [server] timeout_graceful_shutdown ({timeout:g}), which the delay counts within", delay,
        )


@hookimpl
def pounce_banner(config: Any) -> str | None:
    section = config.section(SECTION)
    parts = []
    if section.get("path"):
        parts.append(f"liveness {section['path']}")
    if section.get("ready_path"):
        parts.append(f"readiness {section['ready_path']}")
    if section.get("shutdown_delay"):
        parts.append(f"shutdown delay {section['shutdown_delay']:g}s")
    return "health: " + ", ".join(parts) if parts else None


def _response(status: int, body: bytes, method: str) -> tuple[dict[str, Any], dict[str, Any]]:
    headers = [*_HEADERS_OK, (b"content-length", str(len(body)).encode("ascii"))]
    start = {"type": "http.response.start", "status": status, "headers": headers}
    return start, {"type": "http.response.body", "body": b"" if method == "HEAD" else body}


@hookimpl(tryfirst=True)
def pounce_wrap_app(config: Any, app: Any) -> Any:
    """Once per worker (and once for a shared lifespan): the probe wrapper,
    or None when neither path is set."""
    section = config.section(SECTION)
    root = config.root_path
    live = root + section["path"] if section.get("path") else None
    ready = root + section["ready_path"] if section.get("ready_path") else None
    readiness = Readiness()
    _local.pending = readiness
    if live is None and ready is None:
        return None
    paths = frozenset(p for p in (live, ready) if p)
    quiet = None if section.get("access_log", False) else logging.DEBUG

    async def health_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in paths:
            await app(scope, receive, send)
            return
        if quiet is not None:
            scope[ACCESS_LEVEL_KEY] = quiet
        method = scope["method"]
        if method != "GET" and method != "HEAD":
            await send({"type": "http.response.start", "status": 405, "headers": [
                *_HEADERS_OK, (b"allow", b"GET, HEAD"), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["path"] == live or readiness.ready:
            start, body = _response(200, b"ok\n", method)
        else:
            start, body = _response(503, b"draining\n", method)
        await send(start)
        await send(body)

    return health_app


@hookimpl
def pounce_worker_started(worker: Any) -> None:
    """In the worker, before it accepts: its wrapper was made in this thread
    just before; bind that wrapper's flag to the worker and mark it ready."""
    readiness = getattr(_local, "pending", None)
    if readiness is None:
        readiness = Readiness()
    _local.pending = None
    readiness.ready = True
    _bound[worker] = readiness


@hookimpl
def pounce_worker_draining(worker: Any) -> float | None:
    """The worker's drain begins: readiness turns 503 now; keep accepting for
    ``shutdown_delay`` seconds."""
    readiness = _bound.get(worker)
    if readiness is not None:
        readiness.ready = False
    delay = float(worker.config.section(SECTION).get("shutdown_delay", 0.0))
    return delay or None


__all__ = ["ACCESS_LEVEL_KEY", "Readiness", "name"]
