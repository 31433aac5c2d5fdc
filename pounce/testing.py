"""Public helpers for testing apps and plugins against a real pounce server.

``ServerThread`` runs a :class:`pounce.Server` in a background thread of the
test process (fast, and plugin objects can be inspected directly);
``ServerProcess`` runs the ``pounce`` command as a subprocess, exactly as a
user would. Both bind port 0 (or a unix socket) and always stop what they
started, within a bounded time.

``wait_for`` polls for something the server does (a log line, a counter, a
file) with a deadline, instead of sleeping and hoping it happened;
``capture_logs`` collects pounce's log records, which pytest's ``caplog``
does not see once the logging plugin has taken the ``pounce`` logger off
the root.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pounce.core.config import ServerConfig
from pounce.core.lifecycle import LifecycleCollector, ServingStarted
from pounce.core.server import Server

T = TypeVar("T")

_LISTEN = re.compile(r"listening on ([^\s\"]+)")


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, *, interval: float = 0.02,
             what: str | Callable[[], str] = "the condition") -> T:
    """Call ``predicate`` until it returns something true, and return that.

    After ``timeout`` seconds it raises ``TimeoutError`` naming ``what``; a
    callable ``what`` is only called then, so it can describe the state at
    the deadline (``what=lambda: proc.output()``).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            description = what() if callable(what) else what
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {description}")
        time.sleep(interval)


class LogRecords(logging.Handler):
    """The records a :func:`capture_logs` block saw, oldest first."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [record.getMessage() for record in self.records]

    @property
    def text(self) -> str:
        """Every message, one a line (for ``in`` checks)."""
        return "\n".join(self.messages())


@contextmanager
def capture_logs(level: int = logging.ERROR, loggers: Sequence[str] = ("pounce", "asyncio")) -> Iterator[LogRecords]:
    """``with capture_logs() as logs:`` keeps the records of ``loggers`` at
    ``level`` and above (ERROR from pounce and asyncio by default: a
    traceback in a protocol callback shows up there) until the block ends.

    The handler sits on the loggers themselves, so it sees pounce's records
    whatever the logging plugin does with propagation. It only sees records
    the logger's own level lets through (DEBUG needs ``--log-level debug``).
    """
    handler = LogRecords(level)
    targets = [logging.getLogger(name) for name in loggers]
    for logger in targets:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in targets:
            logger.removeHandler(handler)


class ServerThread:
    """``with ServerThread(app, port=0) as srv: httpx.get(srv.url)``.

    ``overrides`` are config overrides (``workers=``, ``tls_certfile=`` ...).
    No config file is read unless ``config_path`` is given.
    """

    def __init__(
        self,
        app: Any,
        *,
        plugins: Iterable[object] = (),
        config_path: str | os.PathLike[str] | None = None,
        start_timeout: float = 15.0,
        stop_timeout: float = 15.0,
        **overrides: Any,
    ) -> None:
        overrides.setdefault("port", 0)
        overrides.setdefault("host", "127.0.0.1")
        self.app = app
        self.overrides = dict(overrides)
        self.collector = LifecycleCollector()
        plugins = tuple(plugins)
        self.config = ServerConfig.load(config_path, env={}, discover=False, plugins=plugins, **overrides)
        self.server = Server(self.config, app, lifecycle_collector=self.collector, plugins=plugins)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.error: BaseException | None = None
        self._urls: list[str] = []
        self._sockname: Any = None
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        try:
            self.server.run()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc

    def start(self) -> ServerThread:
        self._thread = threading.Thread(target=self._run, name="pounce-test-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.collector.of_type(ServingStarted):
                self._urls = self.server.addresses()
                self._sockname = self.server.sockets[0].getsockname()
                return self
            if not self._thread.is_alive():
                break
            time.sleep(0.01)
        self.stop()
        if self.error is not None:
            raise self.error
        raise TimeoutError("server did not start serving in time")

    def stop(self) -> None:
        self.server.shutdown()
        if self._thread is not None:
            self._thread.join(self.stop_timeout)
            if self._thread.is_alive():
                self.server.force_exit()
                self._thread.join(5)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def sockname(self) -> Any:
        """The first listening address, as noted when serving began."""
        return self._sockname

    @property
    def port(self) -> int:
        return int(self.sockname[1])

    @property
    def url(self) -> str:
        return self._urls[0]


class ServerProcess:
    """Run ``pounce ARGS`` as a subprocess and wait for its banner.

    ``url`` is the first listening address from the banner. Output (stdout
    and stderr together) is kept in a file; ``output()`` reads it.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        start_timeout: float = 20.0,
        wait_for_banner: bool = True,
    ) -> None:
        self.args = list(args)
        self.cwd = cwd
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.start_timeout = start_timeout
        self.wait_for_banner = wait_for_banner
        self.proc: subprocess.Popen[bytes] | None = None
        self.url: str | None = None
        self.urls: list[str] = []
        self._log = tempfile.NamedTemporaryFile(prefix="pounce-", suffix=".log", delete=False)

    def start(self) -> ServerProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pounce", *self.args],
            cwd=self.cwd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        if not self.wait_for_banner:
            return self
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            found = _LISTEN.findall(self.output())
            if found and self.ready():
                self.urls = found
                self.url = found[0]
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"pounce exited with {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"pounce did not start in time:\n{self.output()}")

    @property
    def port(self) -> int:
        """The port of the first listening address (``url``)."""
        assert self.url is not None, "no banner seen (wait_for_banner=False?)"
        return int(self.url.rsplit(":", 1)[1])

    def ready(self) -> bool:
        """True once the banner is out (the last line printed at startup)."""
        return "plugins:" in self.output()

    def output(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signum)

    def wait(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL to the whole process group if it lingers."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
        except (ProcessLookupError, PermissionError):
            pass
        self._log.close()


def run_pounce(args: Sequence[str], *, cwd: str | os.PathLike[str] | None = None,
               env: dict[str, str] | None = None, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run ``pounce ARGS`` to completion (for --check, --help, error exits)."""
    full_env = dict(os.environ if env is None else env)
    return subprocess.run(
        [sys.executable, "-m", "pounce", *args], cwd=cwd, env=full_env,
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )
