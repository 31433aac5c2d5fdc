"""The supervisor: one loop that keeps the right workers running.

Modelled on gunicorn's arbiter. Signal handlers and the thread-safe public
methods only *enqueue* a command; one loop in the main thread does the work,
every ``TICK`` seconds or as soon as a command arrives:

1. run queued commands (stop, force, restart, add, remove);
2. reap workers that ended and decide why (stopped, crashed, boot failure,
   heartbeat timeout), with one log line each;
3. notice workers that became ready, want to retire (max_requests) or stopped
   beating;
4. balance: start workers until ``target`` unmarked ones are alive (after a
   backoff when they keep failing), and drain a *marked* worker (restart,
   max_requests) only once enough replacements are ready — replacement
   first, then drain, so the listening socket always has an acceptor.

Workers share the listening socket (one open file description; threads and
interpreters get their own fd via ``dup``). A draining worker stops accepting while the others
keep accepting from the same queue, so no connection waiting in the kernel's
backlog is lost. (Per-worker ``SO_REUSEPORT`` listeners would each have their
own queue, and closing one resets the connections waiting in it.)
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

from pounce.core.errors import ConfigError, LifespanError, PounceError
from pounce.core.lifecycle import ServingStarted, WorkerDraining, WorkerExited, WorkerReady, WorkerSpawned
from pounce.plugins.supervisor.workers import (
    EXIT_INCOMPATIBLE,
    EXIT_LIFESPAN,
    Phase,
    ProcessWorker,
    ThreadWorker,
    WorkerHandle,
    picklable_plugins,
)

if TYPE_CHECKING:
    from pounce.core.boot import WorkerLifespan as Lifespan
    from pounce.core.server import Server

logger = logging.getLogger("pounce.supervisor")

TICK = 0.05
# Extra seconds a draining worker gets beyond timeout_graceful_shutdown (its
# own drain aborts connections at that deadline) before it is killed.
DRAIN_GRACE = 5.0
# Seconds a forced worker thread gets to end before it is given up on.
FORCE_GRACE = 3.0


class SupervisorError(PounceError):
    """The supervisor gave up (workers fail at every start)."""

    exit_code = 1


class Supervisor:
    """Runs ``server.workers`` workers in ``mode`` until the server stops.

    Public, thread-safe controls: :meth:`restart_workers` (rolling restart),
    :meth:`add_worker`, :meth:`remove_worker`; :meth:`worker_ids` lists the
    workers currently alive.
    """

    def __init__(self, server: Server, mode: str) -> None:
        self.server = server
        self.config = server.config
        self.mode = mode
        self.target = server.workers
        options = self.config.section("supervisor")
        self.worker_timeout: float = options.get("worker_timeout", 30.0)
        self.boot_timeout: float = max(self.worker_timeout, options.get("boot_timeout", 60.0))
        self.max_restarts: int = options.get("max_restarts", 5)
        self.min_uptime: float = options.get("min_uptime", 5.0)
        self.backoff: float = options.get("backoff", 0.1)
        self.backoff_max: float = options.get("backoff_max", 10.0)
        self.heartbeat = min(1.0, self.worker_timeout / 4)
        self.workers: list[WorkerHandle] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping = False
        self.stop_deadline = 0.0
        self.failures = 0
        self.last_failure_at = 0.0
        self.last_failure = ""
        self.next_spawn_at = 0.0
        self.serving = False
        self.ever_ready = False
        self._next_id = 1
        self._commands: collections.deque[str] = collections.deque()
        self._pending: list[str] = []  # commands posted before the loop ran
        self._lock = threading.Lock()
        self._wake: asyncio.Event | None = None
        self._plugins = picklable_plugins(self._programmatic_plugins()) if mode != "thread" else []

    # -- public controls (any thread) -------------------------------------------

    def restart_workers(self) -> None:
        """Rolling restart: start a new set of workers, and drain each old one
        as soon as a new one is accepting. In process and interpreter mode
        the new workers import the app afresh (a code reload); in thread
        mode they reuse the app object already loaded. Thread-safe; same as
        SIGHUP."""
        self._post("restart")

    def add_worker(self) -> None:
        """One more worker (SIGTTIN)."""
        self._post("add")

    def remove_worker(self) -> None:
        """One worker fewer, never below one (SIGTTOU); the newest drains."""
        self._post("remove")

    def worker_ids(self) -> list[int]:
        return [w.worker_id for w in list(self.workers) if w.phase is not Phase.DRAINING]

    # -- running ----------------------------------------------------------------

    def run(self) -> None:
        # The supervisor's own loop is plain asyncio: it only reads pipes and
        # sleeps. Worker threads pick the configured loop themselves.
        asyncio.run(self._main())

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self.loop = loop
        self._wake = asyncio.Event()
        with self._lock:
            self._commands.extend(self._pending)
            self._pending.clear()
        self._install_signals(loop)
        self.server.add_waker(self._on_shutdown)
        lifespan: Lifespan | None = None
        try:
            if self.mode == "thread":
                # Threads share one app object: its lifespan runs once, here,
                # and every worker sees the same state dict.
                app = self.server.plugins.wrap_app(self.config, self.server.app)
                lifespan = await self.server.lifespan_startup(app)
            logger.info("starting %d %s workers", self.target, self.mode)
            while True:
                self._run_commands()
                self._tick(time.monotonic())
                if self.stopping and not self.workers:
                    break
                await self._sleep()
        finally:
            self.server.remove_waker(self._on_shutdown)
            self._abort_all()
            if lifespan is not None:
                await self.server.lifespan_shutdown(lifespan)

    async def _sleep(self) -> None:
        assert self._wake is not None
        try:
            await asyncio.wait_for(self._wake.wait(), TICK)
        except asyncio.TimeoutError:
            pass
        self._wake.clear()

    def _post(self, command: str) -> None:
        with self._lock:
            loop = self.loop
            if loop is None:
                self._pending.append(command)
                return
        self._commands.append(command)
        if not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._poke)
            except RuntimeError:
                pass  # loop already closed

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _on_shutdown(self, force: bool) -> None:
        self._post("force" if force else "stop")

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        """SIGINT/SIGTERM go through the Server (drain, then force); HUP, TTIN
        and TTOU only enqueue a command. Main thread only."""
        if threading.current_thread() is not threading.main_thread():
            return
        self.server.install_signal_handlers(loop)
        for signame, command in (("SIGHUP", "restart"), ("SIGTTIN", "add"), ("SIGTTOU", "remove")):
            signum = getattr(signal, signame, None)
            if signum is None:
                continue
            try:
                loop.add_signal_handler(signum, self._on_signal, signame, command)
            except (NotImplementedError, RuntimeError, ValueError):
                continue

    def _on_signal(self, signame: str, command: str) -> None:
        logger.info("received %s", signame)
        self._post(command)

    # -- commands -----------------------------------------------------------------

    def _run_commands(self) -> None:
        while self._commands:
            command = self._commands.popleft()
            if command == "stop":
                self._begin_stop(force=False)
            elif command == "force":
                self._begin_stop(force=True)
            elif self.stopping:
                continue
            elif command == "restart":
                live = [w for w in self.workers if w.phase is not Phase.DRAINING and not w.marked]
                logger.info("rolling restart of %d workers", len(live))
                for worker in live:
                    worker.marked = "restart"
            elif command == "add":
                self.target += 1
                logger.info("workers: %d (one more)", self.target)
            elif command == "remove":
                if self.target <= 1:
                    logger.info("workers: 1 (cannot go below one)")
                else:
                    self.target -= 1
                    logger.info("workers: %d (one fewer)", self.target)

    def _begin_stop(self, force: bool) -> None:
        now = time.monotonic()
        if not self.stopping:
            self.stopping = True
            self.stop_deadline = now + self.config.timeout_graceful_shutdown + DRAIN_GRACE
            logger.info("stopping %d workers (graceful, up to %.0fs)", len(self.workers),
                        self.config.timeout_graceful_shutdown)
        for worker in list(self.workers):
            if force:
                self._force(worker, "forced")
            elif worker.phase is not Phase.DRAINING:
                self._drain(worker, "shutdown", now)

    # -- the loop body ---------------------------------------------------------

    def _tick(self, now: float) -> None:
        for worker in list(self.workers):
            code = worker.poll()
            if code is not None:
                self._reap(worker, code, now)
                continue
            if worker.in_process and worker.abandoned:
                self._reap(worker, None, now)
                continue
            if worker.phase is Phase.BOOTING and worker.ready:
                worker.phase = Phase.READY
                worker.ready_at = now
                self.ever_ready = True
                logger.info("%s ready", worker.describe())
                self.server.emit(WorkerReady(worker_id=worker.worker_id))
            if worker.phase is Phase.READY and worker.wants_retire and not worker.marked:
                logger.info("%s served %d requests (max_requests): replacing it",
                            worker.describe(), worker.max_requests)
                worker.marked = "max_requests"
            self._check_heartbeat(worker, now)
            if worker.phase is Phase.DRAINING and now > worker.drain_deadline and not worker.forced:
                self._force(worker, "did not finish draining in time")
            if (worker.in_process and worker.forced and not worker.abandoned
                    and now - worker.forced_at > FORCE_GRACE):
                # Its loop is blocked, so even the abort cannot run: stop
                # waiting for it (its thread is a daemon).
                logger.error("%s does not stop: abandoning it", worker.describe())
                worker.abandoned = True
        if self.failures and now - self.last_failure_at > self.min_uptime and any(
            w.phase is Phase.READY and w.spawned_at > self.last_failure_at for w in self.workers
        ):
            self.failures = 0
        if self.stopping:
            if now > self.stop_deadline:
                for worker in list(self.workers):
                    if not worker.forced:
                        self._force(worker, "shutdown timeout")
            return
        self._balance(now)
        if not self.serving and sum(w.phase is Phase.READY for w in self.workers) >= self.target:
            self.serving = True
            logger.info("serving with %d %s workers", self.target, self.mode)
            self.server.emit(ServingStarted(workers=self.target))

    def _check_heartbeat(self, worker: WorkerHandle, now: float) -> None:
        if worker.kill_reason is not None:
            return
        silent = now - worker.last_beat
        if worker.phase is Phase.BOOTING and silent > self.boot_timeout:
            worker.kill_reason = "timeout"
            logger.error("%s did not start within %.0fs: killing it", worker.describe(), self.boot_timeout)
            worker.kill()
        elif worker.phase is Phase.READY and silent > self.worker_timeout:
            # (A draining worker is bounded by its drain deadline instead: its
            # lifespan shutdown may legitimately outlast the heartbeat.)
            worker.kill_reason = "timeout"
            action = (f"abandoning it ({worker.kind}s cannot be killed)" if worker.in_process
                      else "killing it")
            logger.error("%s did not answer its heartbeat for %.1fs (worker_timeout %.1fs): %s",
                         worker.describe(), silent, self.worker_timeout, action)
            worker.kill()

    def _balance(self, now: float) -> None:
        live = [w for w in self.workers if w.phase is not Phase.DRAINING]
        keep = [w for w in live if not w.marked]
        marked = sorted((w for w in live if w.marked), key=lambda w: w.spawned_at)
        # Too many (SIGTTOU): drain the newest first, booting ones before ready.
        while len(keep) > self.target:
            newest = max(keep, key=lambda w: (w.phase is Phase.BOOTING, w.spawned_at))
            keep.remove(newest)
            self._drain(newest, "scale-down", now)
        # Too few: start replacements, waiting out the backoff after failures.
        missing = self.target - len(keep)
        if missing > 0 and now >= self.next_spawn_at:
            for _ in range(missing):
                keep.append(self._spawn())
        # Replacement first, then drain: only as many marked workers as there
        # are ready workers beyond the target.
        ready = sum(w.phase is Phase.READY for w in keep)
        for worker in marked[: max(0, ready + len(marked) - self.target)]:
            self._drain(worker, worker.marked or "restart", now)

    # -- worker changes ----------------------------------------------------------

    def _spawn(self) -> WorkerHandle:
        worker_id = self._next_id
        self._next_id += 1
        jitter = self.config.max_requests_jitter
        max_requests = self.config.max_requests
        if max_requests and jitter:
            max_requests += random.randint(0, jitter)
        worker: WorkerHandle
        if self.mode == "process":
            worker = ProcessWorker(worker_id, max_requests, self.server, self.heartbeat, self._plugins)
        elif self.mode == "interpreter":
            from pounce.plugins.supervisor.interpreter import InterpreterWorker

            worker = InterpreterWorker(worker_id, max_requests, self.server, self.heartbeat, self._plugins)
        else:
            worker = ThreadWorker(worker_id, max_requests, self.server, self.heartbeat)
        self.server.plugins.call("pounce_worker_spawn", config=self.config, worker_id=worker_id)
        self.server.emit(WorkerSpawned(worker_id=worker_id))
        assert self.loop is not None
        worker.start(self.loop)
        self.workers.append(worker)
        logger.info("%s started", worker.describe())
        return worker

    def _drain(self, worker: WorkerHandle, reason: str, now: float) -> None:
        worker.phase = Phase.DRAINING
        worker.drain_reason = reason
        worker.drain_deadline = now + self.config.timeout_graceful_shutdown + DRAIN_GRACE
        logger.info("%s draining (%s)", worker.describe(), reason)
        self.server.emit(WorkerDraining(worker_id=worker.worker_id, reason=reason))
        worker.stop(force=False)

    def _force(self, worker: WorkerHandle, why: str) -> None:
        if worker.forced:
            return
        worker.forced = True
        worker.forced_at = time.monotonic()
        worker.drain_reason = worker.drain_reason or "shutdown"
        worker.phase = Phase.DRAINING
        logger.warning("%s: %s, stopping it now", worker.describe(), why)
        worker.stop(force=True)

    def _reap(self, worker: WorkerHandle, code: int | None, now: float) -> None:
        self.workers.remove(worker)
        worker.close()
        uptime = now - worker.spawned_at
        if worker.kill_reason is not None:
            reason = worker.kill_reason
        elif worker.phase is Phase.DRAINING:
            reason = "stopped"
        elif worker.phase is Phase.BOOTING:
            reason = "boot-failed"
        else:
            reason = "crashed"
        detail = describe_exit(code) + (f": {worker.error}" if worker.error else "")
        if reason == "stopped":
            logger.info("%s exited (%s, %s)", worker.describe(), worker.drain_reason, detail)
        elif reason == "boot-failed":
            logger.error("%s failed to start (%s)", worker.describe(), detail)
        else:
            logger.error("%s %s (%s) after %.1fs", worker.describe(),
                         "timed out" if reason == "timeout" else "died", detail, uptime)
        self.server.emit(WorkerExited(worker_id=worker.worker_id, exitcode=code, reason=reason))
        self.server.plugins.call("pounce_worker_exit", config=self.config,
                                 worker_id=worker.worker_id, exitcode=code)
        if reason == "stopped" or self.stopping:
            return
        if reason == "boot-failed" and code == EXIT_LIFESPAN and not self.ever_ready:
            raise LifespanError(f"{worker.describe()}: {worker.error or 'lifespan startup failed'}")
        if reason == "boot-failed" and code == EXIT_INCOMPATIBLE and not self.ever_ready:
            # Every interpreter worker would fail the same way: say why once.
            raise SupervisorError(worker.error or "a module cannot be loaded in a subinterpreter")
        if uptime < self.min_uptime or reason == "boot-failed":
            self.failures += 1
        else:
            self.failures = 0
        self.last_failure_at = now
        self.last_failure = f"{worker.describe()} {reason}: {detail}"
        if self.failures >= self.max_restarts:
            # A rolling restart (or recycling) whose new workers cannot start:
            # keep the old workers serving rather than stop the server.
            old = [w for w in self.workers if w.marked and w.phase is Phase.READY]
            if old and reason == "boot-failed":
                why = {w.marked for w in old}
                for w in old:
                    w.marked = None
                    w.wants_retire = False
                self.failures = 0
                logger.error(
                    "new workers fail to start (last: %s); %s abandoned, the %d running workers keep serving",
                    self.last_failure,
                    " and ".join(sorted({"restart": "rolling restart"}.get(str(r), "recycling") for r in why)),
                    len(old),
                )
                return
            raise SupervisorError(
                f"workers failed {self.failures} times in a row within {self.min_uptime:g}s of starting "
                f"(last: {self.last_failure}); giving up ([supervisor] max_restarts = {self.max_restarts})"
            )
        delay = 0.0 if not self.failures else min(self.backoff_max, self.backoff * 2 ** (self.failures - 1))
        self.next_spawn_at = now + delay
        unmarked = sum(w.phase is not Phase.DRAINING and not w.marked for w in self.workers)
        if delay and unmarked < self.target:
            logger.info("starting a replacement in %.1fs (%d quick failures in a row)", delay, self.failures)

    def _abort_all(self) -> None:
        """Leaving the loop with workers still alive (an error): stop them hard
        and wait a little so no orphan outlives the server."""
        if not self.workers:
            return
        for worker in self.workers:
            worker.stop(force=True)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and any(
            w.poll() is None and not w.abandoned for w in self.workers
        ):
            time.sleep(0.02)
        for worker in self.workers:
            worker.close()
        self.workers.clear()

    def _programmatic_plugins(self) -> list[object]:
        """Plugins given to Server(plugins=...) (not from entry points)."""
        manager = self.server.plugins
        known = {"core", *manager.discovered}
        return [plugin for name, plugin in manager.list_name_plugin()
                if plugin is not None and name not in known]


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running, abandoned"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def resolve_mode(server: Server) -> str:
    """Process and interpreter modes need an import path to re-import the app
    in each worker; without one (a Server given only a callable) fall back
    to threads."""
    mode = server.worker_mode
    if mode == "interpreter":
        from pounce.plugins.supervisor.interpreter import available

        if not available():
            version = ".".join(map(str, sys.version_info[:3]))
            raise ConfigError(f"worker_mode interpreter needs Python 3.14 or newer (concurrent.interpreters); "
                              f"this is Python {version}")
    if mode in ("process", "interpreter") and not server.app_path:
        logger.warning(
            "worker_mode %s needs the app as \"module:attr\" to import it in each worker; "
            "this Server was given an app object only, so workers run as threads", mode
        )
        return "thread"
    return mode


__all__ = ["Supervisor", "SupervisorError", "describe_exit", "resolve_mode"]

