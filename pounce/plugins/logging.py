"""Built-in plugin ``logging``: server and access logs from ``[logging]``.

Three loggers, all under ``pounce`` (which does not propagate to the root
logger, so nothing is printed twice when an app configures logging too):

- ``pounce.server``: lifecycle, banner, signals, supervision;
- ``pounce.worker``: per-worker events and errors raised by the ASGI app;
- ``pounce.access``: one record per finished request.

Two output formats, chosen once at configure time: ``text`` (for people:
time, level, worker id, logger, message; colour only on a terminal) and
``json`` (for machines: one object per line with stable keys).

The access log is not a hook called per request: ``pounce_request_observer``
returns one plain closure per worker, with everything that does not depend on
the request (which fields the format needs, the logger, the level check)
worked out before the first request arrives.

Two scope keys steer an access record: ``scope["state"]["request_id"]``
(set by the ``request_id`` plugin) is its ``request_id`` field, and
``ACCESS_LEVEL_KEY`` (set by the ``health`` plugin for probes) lowers its
level. ``request_id_var`` carries the id of the request being served into
every JSON record logged meanwhile.

``[logging] server_timing = true`` adds ``Server-Timing: app;dur=<ms>`` to
each HTTP response: the time from calling the app to the app starting its
response (the part of the latency the app is responsible for).

Each record is written with one ``write`` system call on the stderr file
descriptor. A process worker's records therefore reach a shared pipe or file
whole: writes up to ``PIPE_BUF`` (4096 bytes on Linux) to a pipe are atomic,
and JSON records are always a single line.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import logging.config
import os
import re
import select
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pounce import hookimpl
from pounce.core.errors import ConfigError
from pounce.core.options import OptionValueError

name = "logging"

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")

# The id of the request being served in this context (set by the request_id
# plugin around the app call); JSON records logged meanwhile carry it.
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("pounce_request_id", default=None)

# A scope key holding a logging level for the request's access record
# (health probes: DEBUG); absent, the record is logged at INFO.
ACCESS_LEVEL_KEY = "pounce.access_log_level"

DEFAULT_ACCESS_FORMAT = '%(client)s - "%(request_line)s" %(status)s %(bytes)s %(duration_ms).1fms'

# Every field access_log_format may name, with a sample value of the type the
# real one has (used to check a format once, at configure time).
ACCESS_FIELDS: dict[str, Any] = {
    "client": "127.0.0.1:50000",      # client address host:port ("-" if unknown)
    "client_host": "127.0.0.1",       # client address without the port
    "method": "GET",
    "path": "/index.html",            # as sent: percent-encoded, with root_path
    "query": "a=1",                   # query string without "?" ("" if none)
    "request_line": "GET /index.html?a=1 HTTP/1.1",
    "http_version": "1.1",
    "scheme": "http",                 # http or https
    "status": 200,                    # int
    "bytes": 13,                      # int: response body bytes sent
    "duration_ms": 0.5,               # float: milliseconds
    "duration_s": 0.0005,             # float: seconds
    "user_agent": "curl/8.0",         # "-" when absent
    "referer": "-",                   # "-" when absent
    "request_id": "-",                # the request_id plugin's id (off: the X-Request-ID header), "-" if none
    "worker": 0,                      # int worker id
    "pid": 1,                         # int process id
}

# Keys every JSON access record carries (plus request_id when the request had one).
# The request line names HTTP/2 and HTTP/3 the way nginx and uvicorn log them.
_LINE_VERSIONS = {"2": "2.0", "3": "3.0"}
_JSON_ACCESS_KEYS = ("client", "method", "path", "query", "http_version", "status", "bytes", "duration_ms")

_SPEC = re.compile(r"%(?:\((?P<key>[^)]*)\))?[#0+ -]*(?:\d+)?(?:\.\d+)?(?P<conv>[a-zA-Z%])")


def check_access_format(fmt: str) -> tuple[str, ...]:
    """Return the fields ``fmt`` uses; raise ``OptionValueError`` if it is bad.

    Only ``%(field)X`` specs naming a documented field and ``%%`` are allowed:
    a bare ``%s`` would silently print the whole field dict.
    """
    used: list[str] = []
    pos = 0
    for match in _SPEC.finditer(fmt):
        if "%" in fmt[pos:match.start()]:
            break
        pos = match.end()
        key, conv = match.group("key"), match.group("conv")
        if conv == "%" and key is None and match.group(0) == "%%":
            continue
        if key is None:
            raise OptionValueError(
                f"a %-format naming fields like %(client)s (bare {match.group(0)!r} is not allowed)"
            )
        if key not in ACCESS_FIELDS:
            raise OptionValueError(
                f"a %-format using the fields {', '.join(ACCESS_FIELDS)} (unknown field {key!r})"
            )
        if key not in used:
            used.append(key)
    if "%" in fmt[pos:]:
        raise OptionValueError("a %-format with complete %(field)s specs (a stray '%' found; write %% for a percent sign)")
    try:
        fmt % ACCESS_FIELDS
    except (ValueError, TypeError) as exc:
        raise OptionValueError(f"a valid %-format ({exc})") from None
    return tuple(used)


def _validate_access_format(value: Any) -> None:
    check_access_format(value)


@hookimpl
def pounce_add_options(options: Any) -> None:
    add = options.add
    add("logging", "level", "str", "info", "Log level: " + " | ".join(_LEVELS) + ".",
        cli="--log-level", choices=_LEVELS)
    add("logging", "format", "str", "text", "text for people, json for machines (one object per line).",
        cli="--log-format", choices=("text", "json"))
    add("logging", "access_log", "bool", True, "Log one line per request.", cli="--access-log")
    add("logging", "access_log_format", "str", DEFAULT_ACCESS_FORMAT,
        "printf-style access line using %(field)s specs; fields: " + ", ".join(ACCESS_FIELDS) + ".",
        validator=_validate_access_format)
    add("logging", "server_timing", "bool", False,
        "Add Server-Timing: app;dur=<ms> to HTTP responses (time from calling the app to its response start).",
        cli="--server-timing")
    add("logging", "config_file", "str", None, "A logging dictConfig file (TOML or JSON) replacing the defaults.",
        cli="--log-config", nullable=True, metavar="PATH")


# -- worker identity ---------------------------------------------------------

_local = threading.local()
# The worker id of this process's main thread: set in a process worker (and in
# the single-worker fast path), so threads an app starts there inherit it.
_process_worker: int | None = None


def current_worker() -> int | None:
    """The id of the worker running in this thread, or None for the main
    process (supervisor, startup, shutdown)."""
    return getattr(_local, "worker", _process_worker)


# -- formatters ----------------------------------------------------------------

_COLOURS = {
    "CRITICAL": "\x1b[1;31m", "ERROR": "\x1b[31m", "WARNING": "\x1b[33m",
    "INFO": "\x1b[32m", "DEBUG": "\x1b[36m", "TRACE": "\x1b[2m",
}
_RESET = "\x1b[0m"


class _SecondCache:
    """Formats the whole-second part of a timestamp once per second.

    The cache is one tuple swapped in whole, so threads sharing a formatter
    need no lock to read it.
    """

    __slots__ = ("_cache", "_pattern", "_convert")

    def __init__(self, pattern: str, convert: Callable[[float], time.struct_time]) -> None:
        self._cache: tuple[int, str] = (-1, "")
        self._pattern = pattern
        self._convert = convert

    def __call__(self, created: float) -> str:
        second = int(created)
        cached = self._cache
        if cached[0] == second:
            return cached[1]
        text = time.strftime(self._pattern, self._convert(second))
        self._cache = (second, text)
        return text


class TextFormatter(logging.Formatter):
    """``2026-01-31 12:00:00.123 INFO     [w0] access: message``.

    Local time with milliseconds, the level padded to 8, the worker (``main``
    for the main process, ``wN`` for worker N), the logger name without its
    ``pounce.`` prefix, then the message; a traceback follows on its own
    lines. ``colour`` colours the level name (used only on a terminal).
    """

    def __init__(self, colour: bool = False) -> None:
        super().__init__()
        self.colour = colour
        self._clock = _SecondCache("%Y-%m-%d %H:%M:%S", time.localtime)

    def format(self, record: logging.LogRecord) -> str:
        stamp = self._clock(record.created)
        level = record.levelname
        pad = " " * (8 - len(level)) if len(level) < 8 else ""
        if self.colour:
            level = _COLOURS.get(level, "") + level + _RESET
        worker = current_worker()
        who = "main" if worker is None else f"w{worker}"
        logger_name = record.name[7:] if record.name.startswith("pounce.") else record.name
        line = f"{stamp}.{int(record.msecs):03d} {level}{pad} [{who}] {logger_name}: {record.getMessage()}"
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line, keys in a stable order:
    ``ts`` (UTC, ISO 8601 with milliseconds), ``level`` (lower case),
    ``logger``, ``worker`` (int, or null for the main process), ``msg``; access
    records add ``client method path query http_version status bytes
    duration_ms`` and ``request_id`` when the request had one; any other
    record logged while a request with an id runs adds its ``request_id``;
    a record with an exception adds ``exc`` (the formatted traceback)."""

    def __init__(self) -> None:
        super().__init__()
        self._clock = _SecondCache("%Y-%m-%dT%H:%M:%S", time.gmtime)
        self._encode = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), default=str).encode

    def format(self, record: logging.LogRecord) -> str:
        stamp = self._clock(record.created)
        data: dict[str, Any] = {
            "ts": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "worker": current_worker(),
            "msg": record.getMessage(),
        }
        access = getattr(record, "access", None)
        if access is not None:
            for key in _JSON_ACCESS_KEYS:
                data[key] = access[key]
            data["duration_ms"] = round(access["duration_ms"], 3)
            if access["request_id"] != "-":
                data["request_id"] = access["request_id"]
        else:
            request_id = request_id_var.get()
            if request_id is not None:
                data["request_id"] = request_id
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exc"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return self._encode(data)


# -- the handler -------------------------------------------------------------


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes each record with one ``os.write`` on the stream's descriptor.

    A record is one write call, so processes sharing the stream never cut
    each other's lines (atomic up to ``PIPE_BUF`` on pipes, and always on
    regular files opened for appending). Falls back to ``stream.write`` for
    streams without a descriptor (``io.StringIO``).

    ``follow_stderr=True`` writes to whatever ``sys.stderr`` is at each
    record, as ``logging.lastResort`` does, so a server embedded in a test
    run whose stderr is swapped per test never writes to a closed stream.
    """

    def __init__(self, stream: Any = None, *, follow_stderr: bool = False) -> None:
        super().__init__(stream)
        self.follow_stderr = follow_stderr

    def flush(self) -> None:
        if not self.follow_stderr:
            super().flush()
        else:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = self.format(record) + "\n"
            stream = sys.stderr if self.follow_stderr else self.stream
            try:
                fd = stream.fileno()
            except (AttributeError, OSError, ValueError):
                stream.write(data)
                stream.flush()
                return
            encoding = getattr(stream, "encoding", None) or "utf-8"
            raw = data.encode(encoding, "backslashreplace")
            stream.flush()  # anything print()ed before this record goes first
            view = memoryview(raw)
            while view:
                try:
                    written = os.write(fd, view)
                except BlockingIOError:
                    # stderr shared with a process that made it non-blocking:
                    # wait for room rather than drop the record.
                    select.select([], [fd], [], 1.0)
                    continue
                view = view[written:]
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


# -- configuration -------------------------------------------------------------

_OURS = "_pounce_handler"
_configured_pid: int | None = None


def _numeric(level: str) -> int:
    return TRACE if level == "trace" else int(getattr(logging, level.upper()))


# Loggers that get pounce's handler. ``asyncio`` reports event-loop errors
# (a protocol callback that raised, a task exception never retrieved) of the
# server's own loop, and ``py.warnings`` carries the warnings the ``pounce``
# command captures: they belong in the server log, in its format, so JSON
# output stays all JSON.
_HANDLED = ("pounce", "asyncio", "py.warnings")
_BORROWED = _HANDLED[1:]


def _reset() -> logging.Logger:
    """Take back what an earlier configure did to the ``pounce`` loggers."""
    for logger_name in _HANDLED:
        logger = logging.getLogger(logger_name)
        for handler in list(logger.handlers):
            if getattr(handler, _OURS, False):
                logger.removeHandler(handler)
        logger.propagate = True
    root = logging.getLogger("pounce")
    for name_ in ("pounce", "pounce.server", "pounce.worker", "pounce.access"):
        logging.getLogger(name_).setLevel(logging.NOTSET)
    return root


def setup(config: Any) -> None:
    """Configure the ``pounce`` loggers from ``[logging]`` in this process."""
    global _configured_pid
    section = config.section("logging")
    level = _numeric(section.get("level", "info"))
    root = _reset()
    path = config_file_path(config)
    if path is not None:
        _apply_dict_config(path)
        if config.origin("logging", "level") != "default":
            root.setLevel(level)
    else:
        stream = sys.stderr
        if section.get("format", "text") == "json":
            formatter: logging.Formatter = JsonFormatter()
        else:
            formatter = TextFormatter(colour=_wants_colour(stream))
        handler = LineHandler(stream, follow_stderr=True)
        setattr(handler, _OURS, True)
        handler.setFormatter(formatter)
        for logger_name in _HANDLED:
            logger = logging.getLogger(logger_name)
            logger.addHandler(handler)
            logger.propagate = False
        root.setLevel(level)
    _configured_pid = os.getpid()


def config_file_path(config: Any) -> Path | None:
    """``[logging] config_file``, a relative path taken from the directory of
    the TOML file that set it (from the working directory for a flag or an
    environment variable)."""
    value = config.section("logging").get("config_file")
    if not value:
        return None
    path = Path(value)
    origin = config.origin("logging", "config_file")
    if not path.is_absolute() and origin not in ("default", "env", "cli", "override") and config.source:
        path = Path(config.source).parent / path
    return path


def _wants_colour(stream: Any) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def read_dict_config(path: Path) -> dict[str, Any]:
    """Read a dictConfig from a ``.toml`` or ``.json`` file; errors name it."""
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ConfigError(
            f"[logging] config_file: expected a .toml or .json file, found {str(path)!r}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: logging config file not found ([logging] config_file)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read logging config file: {exc}") from None
    try:
        if suffix == ".json":
            data = json.loads(text)
        else:
            from pounce.core.config import tomllib

            data = tomllib.loads(text)
    except (ValueError, json.JSONDecodeError) as exc:
        kind = "JSON" if suffix == ".json" else "TOML"
        raise ConfigError(f"{path}: invalid {kind}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a logging dictConfig table, found {type(data).__name__}")
    return data


def _apply_dict_config(path: Path) -> None:
    data = read_dict_config(path)
    data.setdefault("version", 1)
    # Unlike dictConfig's own default, keep loggers the app already made working.
    data.setdefault("disable_existing_loggers", False)
    try:
        logging.config.dictConfig(data)
    except (ValueError, TypeError, AttributeError, ImportError, KeyError) as exc:
        # dictConfig says which entry failed; its cause says why.
        why = f": {exc.__cause__}" if exc.__cause__ is not None else ""
        raise ConfigError(f"{path}: invalid logging dictConfig: {exc}{why}") from None


@hookimpl
def pounce_configure(config: Any) -> None:
    global _process_worker
    section = config.section("logging")
    fmt = section.get("access_log_format", DEFAULT_ACCESS_FORMAT)
    try:
        check_access_format(fmt)
    except OptionValueError as exc:
        raise ConfigError(f"[logging] access_log_format: expected {exc}, found {fmt!r}") from None
    _process_worker = None
    _local.__dict__.pop("worker", None)
    setup(config)


def _ensure(config: Any) -> None:
    """In a worker process (spawned or forked) configure once more, there."""
    if _configured_pid != os.getpid():
        setup(config)


@hookimpl
def pounce_unconfigure() -> None:
    """Give the borrowed loggers (``asyncio``, ``py.warnings``) back once the
    server is closed: a program that embeds pounce gets its own logging of
    later event loops. The ``pounce`` loggers keep their handler for anything
    said after this."""
    for logger_name in _BORROWED:
        logger = logging.getLogger(logger_name)
        ours = [h for h in logger.handlers if getattr(h, _OURS, False)]
        for handler in ours:
            logger.removeHandler(handler)
        if ours:
            logger.propagate = True


@hookimpl
def pounce_worker_started(worker: Any) -> None:
    global _process_worker
    _ensure(worker.config)
    worker_id = worker.worker_id
    _local.worker = worker_id
    if threading.current_thread() is threading.main_thread():
        _process_worker = worker_id


# -- the access log ------------------------------------------------------------

Observer = Callable[[dict[str, Any], int, int, float], None]


@hookimpl
def pounce_request_observer(config: Any) -> Observer | None:
    """The access log, as one closure per worker (None when it is off)."""
    _ensure(config)
    section = config.section("logging")
    if not section.get("access_log", True):
        return None
    logger = logging.getLogger("pounce.access")
    if not logger.isEnabledFor(logging.INFO):
        return None
    ids_from_state = bool(config.section("request_id").get("enabled", False))
    return make_access_logger(section.get("access_log_format", DEFAULT_ACCESS_FORMAT), logger,
                              ids_from_state=ids_from_state)


def make_access_logger(fmt: str, logger: logging.Logger, *, ids_from_state: bool = False) -> Observer:
    """Build the per-request callable for ``fmt``.

    Always computes the fields the JSON record needs; header scans (user
    agent, referer) only when the format names them. The message is
    formatted lazily by the handler (``fmt % fields``), so a handler that
    drops the record costs nothing more.

    ``ids_from_state``: the request_id plugin is on, so the id is the one it
    put in ``scope["state"]`` (trusted or generated), never a header a
    client chose. Off, the ``X-Request-ID`` header is logged as sent.
    """
    used = set(check_access_format(fmt))
    want_ua = "user_agent" in used
    want_referer = "referer" in used
    want_header_id = not ids_from_state
    scan_headers = want_ua or want_referer or want_header_id
    enabled_for = logger.isEnabledFor
    level_names: dict[int, str] = {}
    pid = os.getpid()
    handle = logger.handle
    # Every access record has the same origin attributes (logger, level,
    # thread, process, source location): take them from one real record made
    # now, in the worker's thread, and copy them per request instead of
    # letting LogRecord.__init__ recompute them each time.
    template = logging.LogRecord(logger.name, logging.INFO, __file__, 0, fmt, None, None).__dict__.copy()
    start = template["created"] - template["relativeCreated"] / 1000.0
    new_record = logging.LogRecord.__new__
    record_class = logging.LogRecord
    now = time.time

    def observe(scope: dict[str, Any], status: int, bytes_sent: int, duration_s: float) -> None:
        client = scope.get("client")
        if client:
            host = str(client[0])
            client_text = f"{host}:{client[1]}" if client[1] is not None else host
        else:
            host = client_text = "-"
        method = scope.get("method", "GET")  # a websocket handshake is a GET
        raw_path = scope.get("raw_path")
        path = raw_path.decode("latin-1") if raw_path else scope.get("path", "")
        query = scope.get("query_string", b"").decode("latin-1")
        version = scope.get("http_version", "1.1")
        line_version = _LINE_VERSIONS.get(version, version)
        level = scope.get(ACCESS_LEVEL_KEY)
        if level is not None and not enabled_for(level):
            return
        request_id = user_agent = referer = "-"
        if ids_from_state:
            state = scope.get("state")
            if state:
                request_id = state.get("request_id") or "-"
        if scan_headers:
            for key, value in scope.get("headers", ()):
                if want_header_id and key == b"x-request-id":
                    request_id = value.decode("latin-1")
                elif want_ua and key == b"user-agent":
                    user_agent = value.decode("latin-1")
                elif want_referer and key == b"referer":
                    referer = value.decode("latin-1")
        worker = current_worker()
        fields = {
            "client": client_text,
            "client_host": host,
            "method": method,
            "path": path,
            "query": query,
            "request_line": f"{method} {path}?{query} HTTP/{line_version}" if query
            else f"{method} {path} HTTP/{line_version}",
            "http_version": version,
            "scheme": scope.get("scheme", "http"),
            "status": status,
            "bytes": bytes_sent,
            "duration_ms": duration_s * 1000.0,
            "duration_s": duration_s,
            "user_agent": user_agent,
            "referer": referer,
            "request_id": request_id,
            "worker": 0 if worker is None else worker,
            "pid": pid,
        }
        record = new_record(record_class)
        attrs = record.__dict__
        attrs.update(template)
        created = now()
        attrs["created"] = created
        attrs["msecs"] = (created - int(created)) * 1000.0
        attrs["relativeCreated"] = (created - start) * 1000.0
        attrs["args"] = fields
        attrs["access"] = fields
        if level is not None:
            attrs["levelno"] = level
            attrs["levelname"] = level_names.get(level) or level_names.setdefault(
                level, logging.getLevelName(level))
        handle(record)

    return observe


# -- Server-Timing -------------------------------------------------------------


@hookimpl(trylast=True)
def pounce_wrap_app(config: Any, app: Any) -> Any:
    """Innermost wrapper (trylast), so that it times the app alone; None
    unless ``[logging] server_timing`` is on."""
    if not config.section("logging").get("server_timing", False):
        return None
    clock = time.perf_counter

    async def server_timing_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = clock()

        async def send_timed(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                value = b"app;dur=%.3f" % ((clock() - started) * 1000.0)
                message = {**message, "headers": [*(message.get("headers") or ()), (b"server-timing", value)]}
            await send(message)

        await app(scope, receive, send_timed)

    return server_timing_app

