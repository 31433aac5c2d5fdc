"""Built-in plugin ``reload``: restart the app when its files change.

Theory of operation. With ``[reload] enabled`` this plugin takes over SERVE
in the process the user started (the *parent*). The parent has already bound
the listening sockets; it never imports the app again and never serves a
request. It runs the real server in a *child*: a fresh Python interpreter
started with the same effective config, reload turned off, and the listening
sockets passed as inherited file descriptors. The child is a complete pounce
server, so with ``workers > 1`` it runs the supervisor itself.

On a change the parent starts a new child on the same sockets and waits until
it reports that it serves. Only then is the old child told to drain and exit.
So:

* no module can be stale: every reload is a new interpreter, whatever the
  worker count and however deep the changed module sits in the import graph;
* the port is never dropped: the parent keeps the sockets open the whole
  time, and a client that connects while no child accepts waits in the
  kernel's listen backlog until the next child does;
* a broken change (syntax or import error, failing lifespan) never replaces
  a working server: the new child reports its error, the parent logs it once
  and keeps the old child serving until the next change.

Two pipes connect the parent and each child. The child writes ``ready`` (or
``error <message>``) on the *status* pipe; the parent writes a shutdown
reason (``reload``, ``signal``, ``force``) on the *control* pipe, and when
the parent dies the child reads end-of-file there and shuts down, so no child
outlives its parent. Each child runs in its own session: a terminal's Ctrl-C
reaches only the parent, which stops the child once, gracefully, and kills
the child's whole process group if it does not exit in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from pounce import hookimpl
from pounce.core.errors import ConfigError
from pounce.core.lifecycle import LifecycleCollector, LifecycleEvent, ServingStarted
from pounce.core.transport.listeners import hand_down

if TYPE_CHECKING:
    from pounce.core.config import ServerConfig
    from pounce.core.server import Server

name = "reload"

logger = logging.getLogger("pounce.reload")

# Never worth a reload, whatever include/exclude say: version-control data,
# bytecode caches, and the temporary and backup files editors write around a
# save (vim's .swp/.swx/.swo and its 4913 probe, emacs's .#lock and #auto#,
# backups ending in ~, JetBrains' safe-write temporaries).
ALWAYS_IGNORED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".mypy_cache", ".pytest_cache",
                                 ".ruff_cache", ".tox", ".nox"})
ALWAYS_IGNORED_FILES = ("*.swp", "*.swx", "*.swo", "*~", ".#*", "#*#", "4913", "*___jb_tmp___",
                        "*___jb_old___", "*.pyc", "*.pyo")

# Changes are grouped until the tree has been quiet for STEP_MS (bounded by
# DEBOUNCE_MS), so an editor's save or a `git checkout` is one reload.
DEBOUNCE_MS = 1600
STEP_MS = 100

# Set in every child's environment (so its supervisor's workers see it too).
CHILD_ENV = "_POUNCE_RELOAD_CHILD"

# A child that served for less than this and then died is not restarted
# until the next change (no crash loop); one that served longer is.
MIN_UPTIME_FOR_RESTART = 2.0


@hookimpl
def pounce_add_options(options: Any) -> None:
    add = options.add
    add("reload", "enabled", "bool", False, "Reload when watched files change (development only).",
        cli="--reload")
    add("reload", "dirs", "list", ["."], "Directories to watch.", cli="--reload-dir", metavar="DIR")
    add("reload", "include", "list", ["*.py"], "Glob patterns of files to watch.",
        cli="--reload-include", metavar="GLOB")
    add("reload", "exclude", "list", [".*", "*.pyc", "__pycache__"], "Glob patterns to ignore.",
        cli="--reload-exclude", metavar="GLOB")


# -- configuration, banner -----------------------------------------------------


@hookimpl
def pounce_configure(config: ServerConfig) -> None:
    """Every watched directory must exist: a typo would otherwise silently
    watch nothing."""
    section = config.section("reload")
    if not section.get("enabled"):
        return
    for directory in section.get("dirs", ()):
        if not Path(directory).is_dir():
            found = "a file" if Path(directory).exists() else "nothing there"
            raise ConfigError(f"[reload] dirs: expected an existing directory, found {found} at {directory!r}")


@hookimpl
def pounce_banner(config: ServerConfig) -> list[str] | None:
    section = config.section("reload")
    if not section.get("enabled"):
        return None
    dirs = ", ".join(_show(Path(d).resolve()) for d in section.get("dirs", ())) or "nothing"
    include = ", ".join(section.get("include", ())) or "nothing"
    exclude = ", ".join(section.get("exclude", ())) or "nothing"
    return [f"reload: watching {dirs} (include {include}; exclude {exclude}, "
            "and always .git, __pycache__, editor swap files)"]


@hookimpl
def pounce_check_warnings(config: ServerConfig) -> str | None:
    """``pounce --check``: reload with several *process* workers has a cost
    this plugin cannot remove. Every reload must start each worker as a new
    interpreter that imports the app (anything less could serve stale code),
    so a reload takes about as long as N app imports on the machine's cores,
    and the old and new worker sets overlap while the old one drains. Thread
    workers share one interpreter: a reload costs the same as with one worker,
    so there is nothing to warn about."""
    if not config.section("reload").get("enabled"):
        return None
    from pounce.core.defaults import pounce_worker_mode
    from pounce.core.server import resolve_workers

    workers = resolve_workers(config.workers)
    if workers < 2 or pounce_worker_mode(config) != "process":
        return None
    return (f"reload with {workers} process workers: each reload starts {workers} fresh worker processes "
            "that all import the app, so reloads take longer, and old and new workers overlap while the old "
            'ones drain; workers = 1 or worker_mode = "thread" reloads as fast as a single worker')


def _show(path: Path) -> str:
    """A path relative to the working directory when it is below it."""
    try:
        rel = path.relative_to(Path.cwd())
    except ValueError:
        return str(path)
    return str(rel) if str(rel) != "." else "."


# -- which changes count -----------------------------------------------------


class ChangeFilter:
    """Decides whether a changed path triggers a reload (a watchfiles filter).

    A path counts when its file name or a trailing part of it matches an
    ``include`` glob (``*.py``, ``templates/*.html``), and no ``exclude`` glob
    matches it or any directory between the watched root and the file
    (``.*`` thus skips ``.venv/``, ``__pycache__`` skips every cache dir).
    """

    def __init__(self, roots: Iterable[str | os.PathLike[str]], include: Sequence[str],
                 exclude: Sequence[str]) -> None:
        self.roots = sorted((Path(r).resolve() for r in roots), key=lambda p: len(p.parts), reverse=True)
        self.include = tuple(include)
        self.exclude = tuple(exclude)

    def _relative(self, path: Path) -> PurePath:
        for root in self.roots:
            try:
                return path.relative_to(root)
            except ValueError:
                continue
        return PurePath(path.name)

    def __call__(self, change: Any, path: str) -> bool:
        rel = self._relative(Path(path))
        parts = rel.parts
        if not parts:
            return False
        name_ = parts[-1]
        if any(p in ALWAYS_IGNORED_DIRS for p in parts[:-1]) or name_ in ALWAYS_IGNORED_DIRS:
            return False
        if any(fnmatch.fnmatchcase(name_, pat) for pat in ALWAYS_IGNORED_FILES):
            return False
        for pattern in self.exclude:
            if rel.match(pattern) or any(fnmatch.fnmatchcase(p, pattern) for p in parts[:-1]):
                return False
        return any(rel.match(pattern) for pattern in self.include)


# -- the parent: watching and swapping children -----------------------------


@hookimpl(tryfirst=True)
def pounce_serve(server: Server, sockets: list[socket.socket]) -> bool | None:
    """With reload on, serve through fresh child processes (see module doc)."""
    if not server.config.section("reload").get("enabled") or os.environ.get(CHILD_ENV):
        return None
    if not isinstance(server.app_path, str) or ":" not in server.app_path:
        raise ConfigError('[reload] enabled: expected the app as an import string "module:attr" '
                          "(a child process must import it afresh), found an app object")
    from pounce.core.boot import run_loop

    run_loop(Reloader(server, sockets).serve(), "asyncio")
    return True


class Child:
    """One server child process and the two pipes to it."""

    def __init__(self, proc: asyncio.subprocess.Process, control_fd: int) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.started = time.monotonic()
        self.ready_at: float | None = None
        self.error: str | None = None
        self.retiring = False
        self.control_fd: int | None = control_fd
        self.exited = asyncio.Event()
        self.retired: asyncio.Task[None] | None = None
        self.follower: asyncio.Task[None] | None = None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def tell(self, message: str) -> None:
        """Write a line on the control pipe; a gone child is not an error."""
        if self.control_fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self.control_fd, message.encode() + b"\n")

    def close_control(self) -> None:
        if self.control_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.control_fd)
            self.control_fd = None

    def kill_group(self) -> None:
        """SIGKILL the child's whole process group (its own session), so a
        supervisor's workers go too."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()


class Reloader:
    """The parent's event loop: one watcher thread, one control loop.

    The watcher thread only queues changed paths and wakes the loop (like a
    signal handler); every decision is taken in :meth:`_control`.
    """

    def __init__(self, server: Server, sockets: list[socket.socket]) -> None:
        self.server = server
        self.config = server.config
        self.sockets = sockets
        section = server.config.section("reload")
        self.dirs = [str(Path(d).resolve()) for d in section.get("dirs", ())] or [str(Path.cwd())]
        self.filter = ChangeFilter(self.dirs, section.get("include", ()), section.get("exclude", ()))
        self.pending: set[str] = set()
        self.children: set[Child] = set()
        self.current: Child | None = None
        self.stopping = False
        self.forced = False
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watch_stop = threading.Event()

    # -- entry ------------------------------------------------------------------

    async def serve(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.server.install_signal_handlers(loop)
        self.server.add_waker(self._waker)
        # watchfiles reports every batch at INFO; our own line says it better.
        logging.getLogger("watchfiles").setLevel(logging.WARNING)
        watcher = threading.Thread(target=self._watch, name="pounce-reload-watch", daemon=True)
        watcher.start()
        try:
            await self._control()
        finally:
            self._watch_stop.set()
            await self._stop_all()
            await loop.run_in_executor(None, watcher.join, 5.0)
            self.server.remove_waker(self._waker)

    def _waker(self, force: bool) -> None:
        """Called by Server.shutdown/force_exit, from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._on_stop, force)

    def _on_stop(self, force: bool) -> None:
        self.stopping = True
        if force and not self.forced:
            self.forced = True
            for child in list(self.children):
                child.tell("force")
        self._poke()

    def _poke(self) -> None:
        assert self._wake is not None
        self._wake.set()

    async def _sleep_until_poked(self) -> None:
        assert self._wake is not None
        await self._wake.wait()
        self._wake.clear()

    # -- the watcher thread --------------------------------------------------

    def _watch(self) -> None:
        import watchfiles

        try:
            for changes in watchfiles.watch(
                *self.dirs, watch_filter=self.filter, debounce=DEBOUNCE_MS, step=STEP_MS,
                stop_event=self._watch_stop, rust_timeout=1000, raise_interrupt=False,
            ):
                paths = {path for _, path in changes}
                assert self._loop is not None
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(self._on_changes, paths)
        except Exception as exc:  # noqa: BLE001 - reported once, serving goes on
            logger.error("watching files for reload failed; reload is off from now on: %s: %s",
                         type(exc).__name__, exc)

    def _on_changes(self, paths: set[str]) -> None:
        self.pending |= paths
        self._poke()

    # -- the control loop ------------------------------------------------------

    async def _control(self) -> None:
        await self._replace([], "at startup")
        while not self.stopping:
            current = self.current
            if self.pending:
                changed = self._take_pending()
                await self._replace(changed)
                continue
            if current is not None and current.returncode is not None and not current.retiring:
                self.current = None
                uptime = time.monotonic() - (current.ready_at or current.started)
                detail = f": {current.error}" if current.error else ""
                recycled = current.returncode == 0 and current.ready_at is not None  # max_requests
                if recycled or uptime >= MIN_UPTIME_FOR_RESTART:
                    logger.warning("server process %d exited with status %s%s; starting a new one",
                                   current.pid, current.returncode, detail)
                    await self._replace([], "on restart")
                else:
                    logger.error("server process %d exited with status %s%s; "
                                 "waiting for a change to start again", current.pid, current.returncode, detail)
                continue
            await self._sleep_until_poked()

    def _take_pending(self) -> list[str]:
        changed = sorted(self.pending)
        self.pending.clear()
        return changed

    async def _replace(self, changed: list[str], when: str = "") -> None:
        """Start a new child; once it serves, retire the current one.

        Changes arriving while the new child starts supersede it (it would
        serve code that is already out of date): it is stopped and another
        one started with everything changed so far.
        """
        while not self.stopping:
            if changed:
                logger.info("detected changes in %s; reloading", _describe_paths(changed))
            begun = time.monotonic()
            child = await self._spawn()
            outcome = await self._await_ready(child)
            if outcome == "ready":
                old, self.current = self.current, child
                took = time.monotonic() - begun
                if old is not None:
                    logger.info("reloaded in %.2fs: process %d serves the new code; process %d "
                                "(previous version) is draining", took, child.pid, old.pid)
                    self._retire(old, "reload", done=f"reload complete: process {old.pid} "
                                 "(previous version) has exited")
                else:
                    logger.info("server process %d is serving (started in %.2fs)", child.pid, took)
                return
            if outcome == "superseded":
                self._retire(child, "reload")
                changed = sorted(set(changed) | set(self._take_pending()))
                continue
            if outcome == "stopping":
                return
            # The new code does not start: keep what serves, wait for a fix.
            self._retire(child, "reload")
            keep = (f"still serving the previous version (process {self.current.pid})"
                    if self.current is not None and self.current.returncode is None
                    else "nothing is serving; waiting for a change")
            what = f"after changes in {_describe_paths(changed)}" if changed else when
            logger.error("the app failed to start %s: %s; %s", what, child.error, keep)
            return

    async def _spawn(self) -> Child:
        """Start ``python -c 'pounce.plugins.reload.child_main()'`` with the
        config, the listening sockets and both pipes as inherited fds."""
        status_r, status_w = os.pipe()
        control_r, control_w = os.pipe()
        fds = [s.fileno() for s in self.sockets]
        # Plugins' listeners (UDP for HTTP/3) stay bound here too; the child adopts them.
        listeners = [listener.spec() for listener in self.server.listeners]
        listener_fds = [fd for _, _, _, owned in listeners for fd in owned]
        spec = {
            "overrides": _child_overrides(self.config, str(self.server.app_path), fds),
            "fds": fds,
            "listeners": listeners,
            "status_fd": status_w,
            "control_fd": control_r,
        }
        argv = [sys.executable, *_interpreter_flags(), "-c",
                "from pounce.plugins.reload import child_main; child_main()", json.dumps(spec)]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, pass_fds=(*fds, *listener_fds, status_w, control_r), start_new_session=True,
                env=_child_environment(),
            )
        except BaseException:
            os.close(status_r)
            os.close(control_w)
            raise
        finally:
            os.close(status_w)
            os.close(control_r)
        child = Child(proc, control_w)
        self.children.add(child)
        if self.stopping:
            child.tell("signal")
        child.follower = asyncio.get_running_loop().create_task(self._follow(child, status_r))
        return child

    async def _follow(self, child: Child, status_fd: int) -> None:
        """Read the child's status lines until it exits, then wake the loop."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(status_fd, "rb", 0))

        async def read_lines() -> None:
            while True:
                line = await reader.readline()
                if not line:
                    return
                text = line.decode("utf-8", "replace").rstrip("\n")
                if text == "ready":
                    child.ready_at = time.monotonic()
                elif text.startswith("error "):
                    child.error = text[6:]
                self._poke()

        lines = loop.create_task(read_lines())
        try:
            await child.proc.wait()
            # The exit can be seen before the last status line is read; the
            # pipe ends at the exit unless the child's own workers hold it.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(lines), 0.5)
        finally:
            lines.cancel()
            transport.close()
            child.close_control()
            if child.error is None and child.ready_at is None:
                child.error = f"the server process exited with status {child.returncode} before serving"
            child.exited.set()
            self._poke()

    async def _await_ready(self, child: Child) -> str:
        while True:
            if child.ready_at is not None:
                return "ready"
            if child.error is not None or child.returncode is not None or child.exited.is_set():
                return "failed"
            if self.stopping:
                return "stopping"
            if self.pending:
                return "superseded"
            await self._sleep_until_poked()

    def _retire(self, child: Child, reason: str, done: str | None = None) -> None:
        """Ask ``child`` to drain and exit; kill its group if it overstays."""
        if child.retired is not None:
            return
        child.retiring = True
        child.tell(reason)
        grace = float(self.config.timeout_graceful_shutdown) + 5.0

        async def wait() -> None:
            try:
                await asyncio.wait_for(child.exited.wait(), grace)
            except asyncio.TimeoutError:
                logger.warning("server process %d did not stop within %.0fs; killing its process group",
                               child.pid, grace)
                child.kill_group()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(child.exited.wait(), 5.0)
            self.children.discard(child)
            if done and child.returncode is not None:
                logger.info("%s", done)

        child.retired = asyncio.get_running_loop().create_task(wait())

    async def _stop_all(self) -> None:
        """Stop every child (gracefully, or forced after a second signal)
        and wait for all of them, bounded."""
        for child in list(self.children):
            self._retire(child, "force" if self.forced else "signal")
        tasks = [c.retired for c in list(self.children) if c.retired is not None]
        while tasks:
            if self.forced:
                for child in list(self.children):
                    child.tell("force")
            done, _ = await asyncio.wait(tasks, timeout=0.2)
            tasks = [t for t in tasks if t not in done]
            if self.forced and tasks:
                await asyncio.sleep(2.0)
                for child in list(self.children):
                    child.kill_group()
                await asyncio.wait(tasks, timeout=5.0)
                break


def _child_environment() -> dict[str, str]:
    """This environment, marked as a reload child's, without POUNCE_RELOAD_*:
    a child that re-read the environment must never start a reloader itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POUNCE_RELOAD_")}
    env[CHILD_ENV] = str(os.getpid())
    return env


def _describe_paths(paths: Sequence[str], limit: int = 5) -> str:
    shown = [_show(Path(p)) for p in paths[:limit]]
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(shown) + more


def _interpreter_flags() -> list[str]:
    """-X, -W and friends of this interpreter, for the children."""
    try:
        return list(subprocess._args_from_interpreter_flags())  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a private helper; without it, no flags
        return []


def _child_overrides(config: ServerConfig, app_path: str, fds: list[int]) -> dict[str, Any]:
    """The parent's effective config as override names and JSON values,
    with reload off and the sockets replaced by the inherited fds."""
    out: dict[str, Any] = {}
    for option in config.registry:
        if config.origin(option.section, option.key) == "default":
            continue
        value = config.get(option.section, option.key)
        out[option.override_name] = list(value) if isinstance(value, tuple) else value
    out["app"] = app_path
    out["reload_enabled"] = False
    out["uds"] = None
    out["fd"] = fds[0] if len(fds) == 1 else None
    return out


# -- the child ---------------------------------------------------------------------

_inherited_fds: list[int] = []


@hookimpl(tryfirst=True)
def pounce_bind(config: ServerConfig) -> list[socket.socket] | None:
    """In a reload child with several inherited sockets: use them all (one
    socket goes through the core's ``fd`` option)."""
    if len(_inherited_fds) < 2:
        return None
    from pounce.core.transport.sockets import from_fd

    return [from_fd(fd, config.backlog) for fd in _inherited_fds]


class _StatusPipe(LifecycleCollector):
    """A lifecycle collector that tells the parent when the server serves."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd: int | None = fd
        self.lock = threading.Lock()

    def record(self, event: LifecycleEvent) -> None:
        if isinstance(event, ServingStarted):
            self.send("ready")

    __call__ = record

    def send(self, line: str) -> None:
        with self.lock:
            if self.fd is None:
                return
            with contextlib.suppress(OSError):
                os.write(self.fd, (line.replace("\n", " ") + "\n").encode("utf-8", "replace"))

    def close(self) -> None:
        with self.lock:
            if self.fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self.fd)
                self.fd = None


def child_main() -> None:
    """Entry point of a reload child (``python -c``): build the config the
    parent sent, import the app afresh, serve on the inherited sockets."""
    spec = json.loads(sys.argv[1])
    sys.argv[1:] = []
    status = _StatusPipe(spec["status_fd"])
    control_fd: int = spec["control_fd"]
    _inherited_fds[:] = spec["fds"]
    hand_down(spec.get("listeners", []))
    # These fds are for this process only, not for workers it may exec.
    for fd in (spec["status_fd"], control_fd):
        with contextlib.suppress(OSError):
            os.set_inheritable(fd, False)
    # The parent printed the banner already; the child's would repeat it.
    logging.getLogger("pounce.server").addFilter(lambda record: record.funcName != "_print_banner")
    holder: dict[str, Any] = {}
    threading.Thread(target=_read_control, args=(control_fd, holder), name="pounce-reload-control",
                     daemon=True).start()
    code = 1
    try:
        code = _run_child(spec["overrides"], status, holder)
    except KeyboardInterrupt:
        code = 130
    finally:
        status.close()
        logging.shutdown()
    sys.exit(code)


def _run_child(overrides: dict[str, Any], status: _StatusPipe, holder: dict[str, Any]) -> int:
    from pounce.core.asgi.appload import load_app
    from pounce.core.config import load_config
    from pounce.core.errors import PounceError
    from pounce.core.plugins import build_plugin_manager
    from pounce.core.server import Server

    try:
        manager = build_plugin_manager(
            enable=overrides.get("plugins_enable", ()), disable=overrides.get("plugins_disable", ()),
            autoload=bool(overrides.get("plugins_autoload", False)),
        )
        known = manager.registry.by_override_name()
        # Options of programmatic plugins (Server(plugins=[...])) exist only in
        # the parent; the child cannot have them.
        usable = {k: v for k, v in overrides.items() if k in known}
        config = load_config(None, overrides=usable, env={}, toml_data={},
                             manager_factory=lambda **_: manager, require_app=True)
        app = load_app(config.app, factory=config.factory, app_dir=config.app_dir)
        server = Server(config, app, app_path=config.app, lifecycle_collector=status)
        with holder.setdefault("lock", threading.Lock()):
            holder["server"] = server
            early = holder.get("reason")
        if early is not None:
            server.shutdown(early)
        server.run()
        return server.exit_code
    except PounceError as exc:
        status.send(f"error {exc}{_where(exc)}")
        if _debug(overrides):
            import traceback

            traceback.print_exc()
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which logs it
        status.send(f"error {type(exc).__name__}: {exc}{_where(exc)}")
        import traceback

        traceback.print_exc()
        return 1


def _read_control(fd: int, holder: dict[str, Any]) -> None:
    """Parent's orders: a reason to shut down, ``force``, or end-of-file
    (the parent is gone: shut down rather than serve orphaned)."""
    buffer = b""
    while True:
        try:
            data = os.read(fd, 256)
        except OSError:
            data = b""
        if not data:
            _order(holder, "signal")
            return
        buffer += data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            _order(holder, line.decode("ascii", "replace").strip() or "signal")


def _order(holder: dict[str, Any], word: str) -> None:
    with holder.setdefault("lock", threading.Lock()):
        server = holder.get("server")
        if server is None:
            holder.setdefault("reason", "signal" if word == "force" else word)
            if word == "force":
                os._exit(1)  # still importing the app: nothing to drain
            return
    if word == "force":
        server.force_exit()
    else:
        server.shutdown(word if word in ("reload", "signal", "api", "error") else "signal")


def _where(exc: BaseException) -> str:
    """`` [at file:line]`` for the app code that raised: a SyntaxError's own
    location, else the innermost frame of the original exception outside
    pounce, the standard library and installed packages (none: nothing)."""
    original: BaseException | None = exc
    while original is not None and original.__cause__ is not None:
        original = original.__cause__
    if original is None:
        return ""
    if isinstance(original, SyntaxError) and original.filename:
        return f" [at {_show(Path(original.filename))}:{original.lineno}]"
    import sysconfig

    paths = sysconfig.get_paths()
    not_app = tuple({str(Path(__file__).resolve().parent.parent), "<"} | {
        paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if paths.get(k)})
    found = ""
    tb = original.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.startswith(not_app):
            found = f" [at {_show(Path(filename))}:{tb.tb_lineno}]"
        tb = tb.tb_next
    return found


def _debug(overrides: dict[str, Any]) -> bool:
    return str(overrides.get("logging_level", "")).lower() in ("debug", "trace")
