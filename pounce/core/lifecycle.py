"""Typed lifecycle events and a collector that records them.

The server emits one frozen event per lifecycle step (and per worker change in
the supervisor). Tests and tools pass a :class:`LifecycleCollector` to
``Server(..., lifecycle_collector=...)`` and assert the ordered sequence.
"""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass, field


class State(enum.Enum):
    """Where the server is in ``CONFIG → DETECT → BIND → LIFESPAN → SERVE → SHUTDOWN``."""

    CREATED = "created"
    CONFIG = "config"
    DETECT = "detect"
    BIND = "bind"
    LIFESPAN = "lifespan"
    SERVE = "serve"
    SHUTDOWN = "shutdown"
    STOPPED = "stopped"


@dataclass(frozen=True)
class LifecycleEvent:
    """Base of every event; ``ts`` is ``time.monotonic()`` when it happened."""

    ts: float = field(default_factory=time.monotonic, compare=False, kw_only=True)


@dataclass(frozen=True)
class ConfigLoaded(LifecycleEvent):
    plugins: tuple[str, ...]


@dataclass(frozen=True)
class WorkerModeDetected(LifecycleEvent):
    mode: str
    workers: int


@dataclass(frozen=True)
class SocketsBound(LifecycleEvent):
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class LifespanStarted(LifecycleEvent):
    enabled: bool


@dataclass(frozen=True)
class ServingStarted(LifecycleEvent):
    workers: int


@dataclass(frozen=True)
class WorkerSpawned(LifecycleEvent):
    worker_id: int


@dataclass(frozen=True)
class WorkerReady(LifecycleEvent):
    """A supervised worker is accepting connections."""

    worker_id: int


@dataclass(frozen=True)
class WorkerDraining(LifecycleEvent):
    """A supervised worker was told to stop accepting and finish its requests.

    ``reason``: ``shutdown``, ``restart``, ``max_requests`` or ``scale-down``.
    """

    worker_id: int
    reason: str


@dataclass(frozen=True)
class WorkerExited(LifecycleEvent):
    worker_id: int
    exitcode: int | None
    reason: str


@dataclass(frozen=True)
class ShutdownStarted(LifecycleEvent):
    reason: str


@dataclass(frozen=True)
class LifespanStopped(LifecycleEvent):
    enabled: bool


@dataclass(frozen=True)
class ServerStopped(LifecycleEvent):
    exit_code: int


class LifecycleCollector:
    """Records events in order; safe to feed from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[LifecycleEvent] = []

    def record(self, event: LifecycleEvent) -> None:
        with self._lock:
            self.events.append(event)

    __call__ = record

    def names(self) -> list[str]:
        with self._lock:
            return [type(e).__name__ for e in self.events]

    def of_type(self, kind: type[LifecycleEvent]) -> list[LifecycleEvent]:
        with self._lock:
            return [e for e in self.events if isinstance(e, kind)]
