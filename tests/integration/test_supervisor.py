"""Supervisor in-process: real worker threads (and processes), real sockets,
lifecycle-event sequences for spawn, crash, restart, recycle and drain."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import supervisorapps as apps

from pounce import PounceError, hookimpl
from pounce.core.lifecycle import (
    ServingStarted,
    WorkerDraining,
    WorkerExited,
    WorkerReady,
    WorkerSpawned,
)
from pounce.plugins.supervisor import supervisor_for
from pounce.testing import LogRecords, ServerThread, capture_logs, wait_for
from tests.helpers import fetch


@pytest.fixture
def suplog() -> Iterator[LogRecords]:
    """The supervisor's log records, whatever the logging plugin does with
    propagation (it keeps ``pounce`` from reaching the root)."""
    with capture_logs(logging.DEBUG, ["pounce.supervisor"]) as records:
        yield records


def get(srv: ServerThread, path: str = "/", timeout: float = 10.0) -> str:
    """One request on a fresh connection; returns the body (asserts 200)."""
    head, body = fetch(srv.sockname[:2], path, timeout=timeout)
    assert head.startswith(b"HTTP/1.1 200"), head
    return body.decode()


def worker_events(srv: ServerThread) -> list[tuple[Any, ...]]:
    """The worker part of the lifecycle, as comparable tuples."""
    out: list[tuple[Any, ...]] = []
    for event in srv.collector.events:
        if isinstance(event, WorkerSpawned):
            out.append(("spawn", event.worker_id))
        elif isinstance(event, WorkerReady):
            out.append(("ready", event.worker_id))
        elif isinstance(event, WorkerDraining):
            out.append(("drain", event.worker_id, event.reason))
        elif isinstance(event, WorkerExited):
            out.append(("exit", event.worker_id, event.exitcode, event.reason))
        elif isinstance(event, ServingStarted):
            out.append(("serving", event.workers))
    return out


def index(events: list[tuple[Any, ...]], item: tuple[Any, ...]) -> int:
    return events.index(item)


class Recorder:
    """A plugin recording the worker hooks (they fire in the supervisor and,
    for pounce_worker_started, inside each worker thread)."""

    name = "recorder"

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.workers: dict[int, Any] = {}

    @hookimpl
    def pounce_worker_spawn(self, worker_id: int) -> None:
        self.calls.append(("spawn", worker_id, threading.current_thread().name))

    @hookimpl
    def pounce_worker_started(self, worker: Any) -> None:
        self.workers[worker.worker_id] = worker
        self.calls.append(("started", worker.worker_id, threading.current_thread().name))

    @hookimpl
    def pounce_worker_exit(self, worker_id: int, exitcode: int | None) -> None:
        self.calls.append(("exit", worker_id, exitcode))


def test_thread_mode_lifecycle_sequence_and_shared_lifespan() -> None:
    recorder = Recorder()
    before = apps.STARTUPS
    srv = ServerThread(apps.app, plugins=[recorder], workers=2, worker_mode="thread").start()
    try:
        assert srv.server.worker_mode == "thread"
        bodies = [get(srv) for _ in range(20)]
        pid, _, lifespan_pid, _ = bodies[0].split()
        # Lifespan ran once, in this process, and its state reaches every worker.
        assert pid == lifespan_pid == str(os.getpid())
        assert apps.STARTUPS == before + 1
        assert {b.split()[1] for b in bodies} <= {"pounce-worker-1", "pounce-worker-2"}
    finally:
        srv.stop()
    assert srv.error is None
    names = srv.collector.names()
    assert names[:4] == ["ConfigLoaded", "WorkerModeDetected", "SocketsBound", "LifespanStarted"]
    assert names[-2:] == ["LifespanStopped", "ServerStopped"]
    events = worker_events(srv)
    assert events[:2] == [("spawn", 1), ("spawn", 2)]
    assert sorted(events[2:4]) == [("ready", 1), ("ready", 2)]
    assert events[4] == ("serving", 2)
    assert sorted(events[5:7]) == [("drain", 1, "shutdown"), ("drain", 2, "shutdown")]
    assert sorted(events[7:]) == [("exit", 1, 0, "stopped"), ("exit", 2, 0, "stopped")]
    assert names.index("ShutdownStarted") < names.index("WorkerDraining")
    # Hooks: spawn in the supervisor's thread, started inside each worker thread.
    spawns = [c for c in recorder.calls if c[0] == "spawn"]
    started = sorted(c for c in recorder.calls if c[0] == "started")
    assert [c[1] for c in spawns] == [1, 2]
    assert started == [("started", 1, "pounce-worker-1"), ("started", 2, "pounce-worker-2")]
    assert sorted(c for c in recorder.calls if c[0] == "exit") == [("exit", 1, 0), ("exit", 2, 0)]


def test_thread_crash_is_logged_and_replaced(suplog: LogRecords) -> None:
    recorder = Recorder()
    with ServerThread(apps.app, plugins=[recorder], workers=2, worker_mode="thread") as srv:
        victim = recorder.workers[1]
        # Stopping a worker's loop under it makes its thread end with an error.
        victim.loop.call_soon_threadsafe(victim.loop.stop)
        wait_for(lambda: ("ready", 3) in worker_events(srv), what="a replacement worker")
        events = worker_events(srv)
        assert ("exit", 1, 1, "crashed") in events
        assert index(events, ("exit", 1, 1, "crashed")) < index(events, ("spawn", 3))
        assert all(get(srv).startswith(str(os.getpid())) for _ in range(10))
        assert supervisor_for(srv.server) is not None
        assert sorted(supervisor_for(srv.server).worker_ids()) == [2, 3]  # type: ignore[union-attr]
    assert "worker 1 (thread) died" in suplog.text
    assert ("exit", 1, 1) in recorder.calls


@pytest.mark.slow
def test_thread_heartbeat_timeout_abandons_and_replaces(suplog: LogRecords) -> None:
    with ServerThread(apps.app, workers=2, worker_mode="thread", supervisor_worker_timeout=1) as srv:
        blocked = threading.Thread(target=lambda: _quiet_get(srv, "/block?2.5"), daemon=True)
        blocked.start()
        wait_for(lambda: any(e[0] == "exit" and e[3] == "timeout" for e in worker_events(srv)),
                 timeout=10, what="a heartbeat timeout")
        # The other worker and the replacement keep serving meanwhile.
        assert get(srv).startswith(str(os.getpid()))
        wait_for(lambda: ("ready", 3) in worker_events(srv), what="a replacement worker")
        blocked.join(10)
    assert "did not answer its heartbeat" in suplog.text
    timeouts = [e for e in worker_events(srv) if e[0] == "exit" and e[3] == "timeout"]
    assert len(timeouts) == 1 and timeouts[0][2] is None


def _quiet_get(srv: ServerThread, path: str) -> None:
    try:
        get(srv, path)
    except (OSError, AssertionError):
        pass


class FailingStart:
    name = "failing-start"

    @hookimpl
    def pounce_worker_started(self, worker: Any) -> None:
        raise RuntimeError("cannot open the cache")


def test_thread_workers_failing_at_every_start_stop_the_server() -> None:
    srv = ServerThread(apps.app, plugins=[FailingStart()], workers=2, worker_mode="thread",
                       supervisor_backoff=0.02, supervisor_max_restarts=4)
    started = time.monotonic()
    with pytest.raises(PounceError) as info:
        srv.start()
    assert time.monotonic() - started < 10
    assert info.value.exit_code == 1
    message = str(info.value)
    assert "giving up" in message and "cannot open the cache" in message and "failing-start" in message
    events = worker_events(srv)
    spawns = [e for e in events if e[0] == "spawn"]
    failures = [e for e in events if e[0] == "exit"]
    assert all(e[3] == "boot-failed" for e in failures)
    # No restart storm: it stops right after max_restarts failures.
    assert 4 <= len(failures) <= 5 and len(spawns) == len(failures)
    assert not any(e[0] == "serving" for e in events)


def test_max_requests_recycles_replacement_first() -> None:
    with ServerThread(apps.app, workers=2, worker_mode="thread", max_requests=15) as srv:
        for _ in range(70):
            get(srv)
        wait_for(lambda: sum(e[0] == "exit" for e in worker_events(srv)) >= 2, what="recycled workers")
        events = worker_events(srv)
    drains = [e for e in events if e[0] == "drain" and e[2] == "max_requests"]
    assert len(drains) >= 2
    for drain in drains:
        # A newer worker was ready before this one started draining.
        before = events[: events.index(drain)]
        assert any(e[0] == "ready" and e[1] > drain[1] for e in before), events


@pytest.mark.slow
def test_restart_workers_under_load_drops_nothing() -> None:
    with ServerThread(apps.app, workers=2, worker_mode="thread") as srv:
        before = apps.REQUESTS
        load = apps.Load(srv.url, seconds=3.0, concurrency=4)
        try:
            wait_for(lambda: apps.REQUESTS >= before + 20, what="the load to get going")
            supervisor_for(srv.server).restart_workers()  # type: ignore[union-attr]
            wait_for(lambda: sum(e[0] == "exit" for e in worker_events(srv)) >= 2,
                     what="old workers gone")
            results = load.finish()
        finally:
            load.kill()
        events = worker_events(srv)
    assert len(results) > 50
    assert load.errors() == []
    assert ("drain", 1, "restart") in events and ("drain", 2, "restart") in events
    first_new_ready = min(index(events, ("ready", 3)), index(events, ("ready", 4)))
    assert first_new_ready < min(index(events, ("drain", 1, "restart")), index(events, ("drain", 2, "restart")))


@pytest.mark.slow
def test_add_and_remove_worker(suplog: LogRecords) -> None:
    with ServerThread(apps.app, workers=2, worker_mode="thread") as srv:
        sup = supervisor_for(srv.server)
        assert sup is not None
        sup.add_worker()
        wait_for(lambda: ("ready", 3) in worker_events(srv), what="a third worker")
        assert sorted(sup.worker_ids()) == [1, 2, 3]
        sup.remove_worker()
        wait_for(lambda: any(e[0] == "exit" for e in worker_events(srv)), what="a worker to go")
        assert ("drain", 3, "scale-down") in worker_events(srv)
        assert sorted(sup.worker_ids()) == [1, 2]
        sup.remove_worker()
        sup.remove_worker()  # never below one
        wait_for(lambda: "cannot go below one" in suplog.text, what="the refusal to go below one")
        wait_for(lambda: len(sup.worker_ids()) == 1, what="one worker")
        assert get(srv)


@pytest.mark.slow
def test_shutdown_from_another_thread_finishes_in_flight_requests() -> None:
    srv = ServerThread(apps.app, workers=2, worker_mode="thread").start()
    bodies: list[str] = []
    before = apps.REQUESTS
    client = threading.Thread(target=lambda: bodies.append(get(srv, "/?sleep=1")))
    try:
        client.start()
        wait_for(lambda: apps.REQUESTS > before, what="the request to be inside the app")
        threading.Thread(target=srv.server.shutdown).start()
        client.join(10)
    finally:
        srv.stop()
    assert bodies and bodies[0].startswith(str(os.getpid()))
    assert srv.server.exit_code == 0
    exits = [e for e in worker_events(srv) if e[0] == "exit"]
    assert sorted(exits) == [("exit", 1, 0, "stopped"), ("exit", 2, 0, "stopped")]


needs_interpreters = pytest.mark.skipif(sys.version_info < (3, 14), reason="interpreter workers need Python 3.14+")
IMPORTING_MODES = ["process", pytest.param("interpreter", marks=needs_interpreters)]


@pytest.mark.slow
@pytest.mark.parametrize("mode", IMPORTING_MODES)
def test_importing_modes_in_process_server_each_worker_runs_lifespan(tmp_path: Any, mode: str) -> None:
    config = tmp_path / "pounce.toml"
    config.write_text('[server]\napp = "supervisorapps:app"\n')
    recorder = Recorder()  # pickled into each worker: it records there, not here
    srv = ServerThread(apps.app, config_path=config, plugins=[recorder], workers=2, worker_mode=mode).start()
    try:
        assert srv.server.worker_mode == mode
        bodies = [get(srv) for _ in range(30)]
    finally:
        srv.stop()
    where = {b.split()[0] for b in bodies}
    assert str(os.getpid()) not in where and len(where) >= 1
    if mode == "interpreter":  # in this process, each in an interpreter of its own
        assert {w.split("/")[0] for w in where} == {str(os.getpid())}
        assert {b.split()[1] for b in bodies} <= {"pounce-worker-1", "pounce-worker-2"}
    for body in bodies:
        pid, _, lifespan_pid, startups = body.split()
        assert pid == lifespan_pid and startups == "1"  # each worker ran its own lifespan
    # The supervisor's side of the worker hooks ran here, pounce_worker_started in the workers' copies.
    assert [c[:2] for c in recorder.calls if c[0] == "spawn"] == [("spawn", 1), ("spawn", 2)]
    assert not recorder.workers
    exits = sorted(e for e in worker_events(srv) if e[0] == "exit")
    assert exits == [("exit", 1, 0, "stopped"), ("exit", 2, 0, "stopped")]


@pytest.mark.parametrize("mode", IMPORTING_MODES)
def test_importing_modes_without_import_path_fall_back_to_threads(suplog: LogRecords, mode: str) -> None:
    with ServerThread(apps.app, workers=2, worker_mode=mode) as srv:
        assert srv.server.worker_mode == "thread"
        assert get(srv).startswith(str(os.getpid()))
    assert "workers run as threads" in suplog.text


def test_single_worker_leaves_serving_to_the_core() -> None:
    with ServerThread(apps.app, workers=1) as srv:
        assert supervisor_for(srv.server) is None
        assert get(srv)
    assert not any(isinstance(e, WorkerSpawned) for e in srv.collector.events)


@pytest.mark.slow
def test_process_worker_crash_sequence(tmp_path: Any) -> None:
    import signal

    config = tmp_path / "pounce.toml"
    config.write_text('[server]\napp = "supervisorapps:app"\n')
    with ServerThread(apps.app, config_path=config, workers=2, worker_mode="process") as srv:
        sup = supervisor_for(srv.server)
        assert sup is not None
        victim = next(w for w in sup.workers if w.worker_id == 1)
        os.kill(victim.pid, signal.SIGKILL)  # type: ignore[attr-defined]
        wait_for(lambda: ("ready", 3) in worker_events(srv), 15, what="a replacement worker process")
        events = worker_events(srv)
        assert get(srv).split()[0] != str(victim.pid)  # type: ignore[attr-defined]
    crash = ("exit", 1, -signal.SIGKILL, "crashed")
    assert events[:2] == [("spawn", 1), ("spawn", 2)]
    assert sorted(events[2:4]) == [("ready", 1), ("ready", 2)]
    assert events[4] == ("serving", 2)
    assert events[5:8] == [crash, ("spawn", 3), ("ready", 3)]


class FailingSpawn:
    name = "failing-spawn"

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def pounce_worker_spawn(self, worker_id: int) -> None:
        self.calls += 1
        if worker_id == 2:
            raise ValueError("no slot for worker 2")


def test_a_plugin_failing_in_a_supervisor_hook_stops_the_server_naming_it() -> None:
    plugin = FailingSpawn()
    srv = ServerThread(apps.app, plugins=[plugin], workers=2, worker_mode="thread")
    with pytest.raises(PounceError) as info:
        srv.start()
    assert "plugin 'failing-spawn' failed in pounce_worker_spawn: ValueError: no slot for worker 2" in str(info.value)
    # Worker 1 had started; it was stopped, not left behind.
    wait_for(lambda: not any(t.name.startswith("pounce-worker-") for t in threading.enumerate()),
             timeout=10, what="worker threads to end")


@pytest.mark.slow
def test_forced_stop_does_not_wait_for_a_blocked_thread(suplog: LogRecords) -> None:
    srv = ServerThread(apps.app, workers=2, worker_mode="thread").start()
    before = apps.REQUESTS
    try:
        threading.Thread(target=lambda: _quiet_get(srv, "/block?8"), daemon=True).start()
        wait_for(lambda: apps.REQUESTS > before, what="a worker to be blocked in the app")
        started = time.monotonic()
        srv.server.shutdown()
        srv.server.force_exit()
        assert srv._thread is not None
        srv._thread.join(7)
        assert not srv._thread.is_alive(), "run() still waits for a blocked worker thread"
        assert time.monotonic() - started < 6.5
    finally:
        srv.stop()  # already stopped when the test passes
    assert "does not stop: abandoning it" in suplog.text
    exits = [e for e in worker_events(srv) if e[0] == "exit"]
    assert len(exits) == 2 and any(e[2] is None for e in exits)  # the blocked one: abandoned
