"""The logging plugin, seen from outside: a real ``pounce`` subprocess, real
HTTP requests, and its captured stderr parsed line by line."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from pounce import hookimpl
from pounce.testing import run_pounce, wait_for
from tests.helpers import ROOT, connect, exchange, free_port, read_until, settled, subprocess_env

# The documented text line: time, level, worker, logger, message.
TEXT_LINE = re.compile(
    r"^(?P<time>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}) "
    r"(?P<level>CRITICAL|ERROR|WARNING|INFO|DEBUG|TRACE) +"
    r"\[(?P<worker>main|w\d+)\] (?P<logger>[\w.]+): (?P<msg>.*)$"
)
# The default access_log_format.
DEFAULT_ACCESS = re.compile(
    r'^(?P<client>[\d.]+:\d+) - "(?P<method>[A-Z]+) (?P<target>\S+) HTTP/(?P<version>1\.[01])" '
    r"(?P<status>\d{3}) (?P<bytes>\d+) (?P<ms>\d+\.\d)ms$"
)
BASE_KEYS = {"ts", "level", "logger", "msg", "worker"}
ACCESS_KEYS = {"client", "method", "path", "query", "http_version", "status", "bytes", "duration_ms"}


def start(pounce_process: Any, *args: str, **kw: Any) -> tuple[Any, str]:
    """``pounce ARGS`` once its banner is out (text, JSON or a dictConfig format)."""
    proc = pounce_process(*args, **kw)
    return proc, proc.url


def stop(proc: Any) -> str:
    assert proc.stop() == 0, proc.output()
    return proc.output()


def json_lines(output: str) -> list[dict[str, Any]]:
    """Every non-empty line must be one JSON object."""
    records = []
    for line in output.splitlines():
        if line.strip():
            record = json.loads(line)
            assert isinstance(record, dict), line
            records.append(record)
    return records


@pytest.mark.slow
def test_json_lines_are_valid_and_complete(pounce_process: Any) -> None:
    proc, url = start(pounce_process, "testapps:hello", "--host", "127.0.0.1", "--port", "0",
                      "--log-format", "json")
    with httpx.Client() as client:
        assert client.get(url + "/a/b?x=1&y=2", headers={"X-Request-ID": "req-42"}).status_code == 200
        assert client.get(url + "/plain").status_code == 200
        assert client.head(url + "/").status_code == 200
    records = json_lines(stop(proc))
    for record in records:
        assert BASE_KEYS <= set(record), record
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["ts"])
        assert record["level"] in ("critical", "error", "warning", "info", "debug", "trace")
        assert record["worker"] is None or isinstance(record["worker"], int)
    server = [r for r in records if r["logger"] == "pounce.server"]
    assert any(r["msg"].startswith("listening on http://127.0.0.1:") for r in server)
    access = [r for r in records if r["logger"] == "pounce.access"]
    assert len(access) == 3, records
    first, second, head = access
    assert ACCESS_KEYS <= set(first)
    assert first["method"] == "GET" and first["path"] == "/a/b" and first["query"] == "x=1&y=2"
    assert first["http_version"] == "1.1" and first["status"] == 200 and first["bytes"] == 13
    assert first["request_id"] == "req-42"
    assert first["client"].startswith("127.0.0.1:")
    assert isinstance(first["duration_ms"], float) and 0 <= first["duration_ms"] < 5000
    assert first["worker"] == 0
    assert '"GET /a/b?x=1&y=2 HTTP/1.1" 200 13' in first["msg"]
    assert "request_id" not in second and second["query"] == "" and second["path"] == "/plain"
    assert head["method"] == "HEAD" and head["bytes"] == 0


def test_text_lines_match_the_documented_format(pounce_process: Any) -> None:
    proc, url = start(pounce_process, "testapps:hello", "--host", "127.0.0.1", "--port", "0")
    with httpx.Client() as client:
        client.get(url + "/path%20with%0Aspace?q=%22x%22")
        client.get(url + "/")
    output = stop(proc)
    assert "\x1b[" not in output  # no colour when stderr is not a terminal
    lines = [line for line in output.splitlines() if line.strip()]
    parsed = [TEXT_LINE.match(line) for line in lines]
    assert all(parsed), [line for line, m in zip(lines, parsed, strict=True) if not m]
    access = [m for m in parsed if m and m["logger"] == "access"]
    assert len(access) == 2
    for m in access:
        assert m["level"] == "INFO" and m["worker"] == "w0"
        fields = DEFAULT_ACCESS.match(m["msg"])
        assert fields, m["msg"]
        assert fields["status"] == "200" and fields["bytes"] == "13"
    # The path is logged as sent: an encoded newline cannot split the line.
    assert DEFAULT_ACCESS.match(access[0]["msg"])["target"] == "/path%20with%0Aspace?q=%22x%22"  # type: ignore[index]
    assert any(m["logger"] == "server" and m["worker"] == "main" for m in parsed if m)


def test_disabled_access_log_prints_nothing_per_request(pounce_process: Any) -> None:
    proc, url = start(pounce_process, "testapps:hello", "--host", "127.0.0.1", "--port", "0",
                      "--no-access-log")
    before = proc.output()
    with httpx.Client() as client:
        for _ in range(20):
            assert client.get(url + "/").status_code == 200
    # Stopping the server writes out whatever it had: after the banner, only
    # the few shutdown lines, nothing per request.
    output = stop(proc)
    after = output[len(before):].splitlines()
    assert len(after) < 10, after
    assert "access" not in output and "GET /" not in output


@pytest.mark.slow
def test_access_log_can_be_disabled_from_the_config_file(pounce_process: Any, tmp_path: Path) -> None:
    (tmp_path / "pounce.toml").write_text('[logging]\naccess_log = false\nformat = "json"\n')
    proc, url = start(pounce_process, "testapps:hello", "--host", "127.0.0.1", "--port", "0")
    with httpx.Client() as client:
        for _ in range(5):
            client.get(url + "/")
    records = json_lines(stop(proc))
    assert records and not [r for r in records if r["logger"] == "pounce.access"]


def test_access_log_format_fields(pounce_process: Any, tmp_path: Path) -> None:
    fmt = ('%(client_host)s|%(method)s|%(path)s|%(query)s|%(request_line)s|%(status)d|%(bytes)d|'
           '%(duration_s).6f|%(user_agent)s|%(referer)s|%(request_id)s|%(scheme)s|%(worker)s|%(pid)d|100%%')
    (tmp_path / "pounce.toml").write_text(f"[logging]\naccess_log_format = '{fmt}'\n")
    proc, url = start(pounce_process, "testapps:hello", "--host", "127.0.0.1", "--port", "0")
    with httpx.Client() as client:
        client.get(url + "/p?k=v", headers={"User-Agent": "agent/1.0 (test)", "Referer": "http://ref.example/",
                                            "X-Request-ID": "id-7"})
        client.get(url + "/bare", headers={"User-Agent": ""})
    output = stop(proc)
    lines = [m["msg"] for m in map(TEXT_LINE.match, output.splitlines()) if m and m["logger"] == "access"]
    assert len(lines) == 2, output
    parts = lines[0].split("|")
    assert parts[:7] == ["127.0.0.1", "GET", "/p", "k=v", "GET /p?k=v HTTP/1.1", "200", "13"]
    assert 0 <= float(parts[7]) < 5
    assert parts[8:12] == ["agent/1.0 (test)", "http://ref.example/", "id-7", "http"]
    assert parts[12] == "0" and int(parts[13]) == proc.proc.pid and parts[14] == "100%"
    bare = lines[1].split("|")
    assert bare[4] == "GET /bare HTTP/1.1" and bare[9] == "-" and bare[10] == "-"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fmt", "why"),
    [
        ("%(nope)s", "unknown field 'nope'"),
        ("%(client)s %s", "bare '%s'"),
        ("%(client)s 100%", "stray '%'"),
        ("%(client)d", "valid %-format"),
        ("%(status", "stray '%'"),
    ],
)
def test_bad_access_log_format_is_a_config_error(tmp_path: Path, fmt: str, why: str) -> None:
    (tmp_path / "pounce.toml").write_text(f"[logging]\naccess_log_format = '{fmt}'\n")
    env = subprocess_env()
    for extra in ([], ["--check"]):
        result = run_pounce(["testapps:hello", "--port", "0", *extra], cwd=tmp_path, env=env)
        assert result.returncode == 2, result.stderr
        err = result.stderr
        assert "pounce.toml: [logging] access_log_format: expected" in err and why in err, err
        assert f"found {fmt!r}" in err
        assert "Traceback" not in err
    # The environment is checked the same way.
    (tmp_path / "pounce.toml").unlink()
    result = run_pounce(["testapps:hello", "--port", "0"], cwd=tmp_path,
                        env=subprocess_env({"POUNCE_LOGGING_ACCESS_LOG_FORMAT": fmt}))
    assert result.returncode == 2 and "environment POUNCE_LOGGING_ACCESS_LOG_FORMAT: expected" in result.stderr


@pytest.mark.slow
def test_dict_config_toml_is_honoured(pounce_process: Any, tmp_path: Path) -> None:
    logfile = tmp_path / "access.log"
    (tmp_path / "logging.toml").write_text(textwrap.dedent(f"""\
        version = 1
        [formatters.plain]
        format = "CUSTOM|%(levelname)s|%(name)s|%(message)s"
        [handlers.err]
        class = "logging.StreamHandler"
        stream = "ext://sys.stderr"
        formatter = "plain"
        [handlers.file]
        class = "logging.FileHandler"
        filename = {json.dumps(str(logfile))}
        formatter = "plain"
        [loggers.pounce]
        level = "INFO"
        handlers = ["err"]
        propagate = false
        [loggers."pounce.access"]
        handlers = ["file"]
        propagate = false
        """))
    proc, url = start(pounce_process, "testapps:hello", "--host", "127.0.0.1", "--port", "0",
                      "--log-config", "logging.toml")
    with httpx.Client() as client:
        client.get(url + "/via-dictconfig")
    output = stop(proc)
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines and all(line.startswith("CUSTOM|") for line in lines), output
    assert "CUSTOM|INFO|pounce.server|listening on http://127.0.0.1:" in output
    assert "via-dictconfig" not in output  # access records went to the file only
    access = logfile.read_text().splitlines()
    assert len(access) == 1 and access[0].startswith("CUSTOM|INFO|pounce.access|127.0.0.1:")
    assert '"GET /via-dictconfig HTTP/1.1" 200 13' in access[0]


def test_dict_config_json_can_use_pounce_formatters(pounce_process: Any, tmp_path: Path) -> None:
    (tmp_path / "logging.json").write_text(json.dumps({
        "version": 1,
        "formatters": {"json": {"()": "pounce.plugins.logging.JsonFormatter"}},
        "handlers": {"err": {"class": "pounce.plugins.logging.LineHandler", "formatter": "json",
                             "stream": "ext://sys.stderr"}},
        "root": {"level": "WARNING", "handlers": ["err"]},
        "loggers": {"pounce": {"level": "DEBUG"}},
    }))
    proc, url = start(pounce_process, "testapps:hello", "--host", "127.0.0.1", "--port", "0",
                      "--log-config", "logging.json")
    with httpx.Client() as client:
        client.get(url + "/j")
    records = json_lines(stop(proc))
    access = [r for r in records if r["logger"] == "pounce.access"]
    assert len(access) == 1 and access[0]["path"] == "/j" and access[0]["status"] == 200
    # pounce propagates to the root handler exactly once per record.
    banner = [r for r in records if r["msg"].startswith("listening on")]
    assert len(banner) == 1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.toml", None, "missing.toml: logging config file not found"),
        ("bad.toml", "version = [", "bad.toml: invalid TOML"),
        ("bad.json", "{", "bad.json: invalid JSON"),
        ("wrong.toml", 'version = 1\n[handlers.h]\nclass = "no.such.Handler"\n', "wrong.toml: invalid logging dictConfig"),
        ("log.yaml", "version: 1\n", "[logging] config_file: expected a .toml or .json file, found"),
    ],
)
def test_bad_dict_config_file_is_a_config_error(tmp_path: Path, name: str, content: str | None,
                                                message: str) -> None:
    if content is not None:
        (tmp_path / name).write_text(content)
    result = run_pounce(["testapps:hello", "--port", "0", "--log-config", name], cwd=tmp_path, env=subprocess_env())
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


BOOM_APP = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    def inner():
        raise ZeroDivisionError("boom in app")
    inner()
'''


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_app_error_is_logged_once_with_traceback(pounce_process: Any, tmp_path: Path, fmt: str) -> None:
    (tmp_path / "boomapp.py").write_text(BOOM_APP)
    proc, url = start(pounce_process, "boomapp:app", "--host", "127.0.0.1", "--port", "0",
                      "--log-format", fmt)
    with httpx.Client() as client:
        assert client.get(url + "/explode?now=1").status_code == 500
    output = stop(proc)
    assert output.count("ZeroDivisionError: boom in app") == 1, output
    assert output.count("error in ASGI app") == 1, output
    if fmt == "json":
        records = json_lines(output)
        [error] = [r for r in records if r["level"] == "error"]
        assert error["logger"] == "pounce.worker" and error["msg"] == "error in ASGI app: GET /explode"
        assert error["exc"].startswith("Traceback") and "ZeroDivisionError: boom in app" in error["exc"]
        assert 'in inner' in error["exc"]
        [access] = [r for r in records if r["logger"] == "pounce.access"]
        assert access["status"] == 500
    else:
        index = output.index("error in ASGI app: GET /explode")
        assert TEXT_LINE.match(output[output.rindex("\n", 0, index) + 1:].splitlines()[0])
        assert "Traceback (most recent call last)" in output[index:]
        assert "ZeroDivisionError: boom in app" in output[index:]


@pytest.mark.slow
def test_log_level_filters_and_trace_is_lowest(pounce_process: Any, tmp_path: Path) -> None:
    # No banner at warning level: the port is chosen here, and the server is
    # ready when it answers.
    port = free_port()
    quiet = pounce_process("testapps:hello", "--host", "127.0.0.1", "--port", str(port),
                           "--log-level", "warning", wait_for_banner=False)
    wait_for(lambda: answers(f"http://127.0.0.1:{port}/"), 15, what="the quiet server to answer")
    output = stop(quiet)
    assert "listening on" not in output and "access" not in output  # INFO is below warning
    (tmp_path / "pounce.toml").write_text('[logging]\nlevel = "trace"\nformat = "json"\n')
    proc, url = start(pounce_process, "testapps:hello", "--host", "127.0.0.1", "--port", "0")
    with httpx.Client() as client:
        client.get(url + "/")
    assert exchange(proc.port, b"NOT HTTP\r\n\r\n").startswith(b"HTTP/1.1 400")
    records = json_lines(stop(proc))
    assert any(r["level"] == "debug" and "rejected request" in r["msg"] for r in records), records


def answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1.0)
    except httpx.TransportError:
        return False
    return True


def test_colour_only_on_a_terminal(tmp_path: Path) -> None:
    """stderr on a pseudo-terminal gets coloured level names; a pipe never does
    (checked in the text-format test)."""
    master, slave = pty.openpty()
    env = subprocess_env()
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pounce", "testapps:hello", "--host", "127.0.0.1", "--port", "0"],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, start_new_session=True,
    )
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + 20
        while b"plugins:" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        os.close(master)
    text = seen.decode(errors="replace")
    assert "plugins:" in text, text
    assert "\x1b[32mINFO\x1b[0m" in text
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert all(TEXT_LINE.match(line) for line in plain.replace("\r", "").splitlines() if line.strip())


WRITER = '''
import logging, sys
from pounce.plugins.logging import JsonFormatter, LineHandler
handler = LineHandler(sys.stderr)
handler.setFormatter(JsonFormatter())
log = logging.getLogger("pounce.worker")
log.addHandler(handler)
log.setLevel(logging.INFO)
tag = sys.argv[1]
for i in range(300):
    log.info("%s-%d-%s", tag, i, tag * 3500)
'''


F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)  # Linux; the constant is in fcntl from 3.10 on


def pipe_bytes(fd: int) -> int:
    """How many bytes wait in a pipe to be read."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


@pytest.mark.slow
@pytest.mark.parametrize("nonblocking", [False, True])
def test_records_from_several_processes_never_interleave(tmp_path: Path, nonblocking: bool) -> None:
    """Four processes log 3.5 KB records into one pipe at once: every line
    read back is one whole JSON record. With a non-blocking pipe (set by
    whoever shares it) and a reader that starts late, records wait for room
    instead of being lost."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, not nonblocking)
    env = subprocess_env()
    env.pop("PYTHONUNBUFFERED", None)
    procs = [
        subprocess.Popen([sys.executable, str(script), tag], stderr=write_fd, stdin=subprocess.DEVNULL,
                         cwd=ROOT, env=env)
        for tag in "abcd"
    ]
    os.close(write_fd)
    chunks = []
    try:
        with os.fdopen(read_fd, "rb") as reader:
            if nonblocking:
                # The reader starts late: the writers fill the pipe and hit
                # EAGAIN (it stops filling; a whole record takes a page of it).
                capacity = fcntl.fcntl(read_fd, F_GETPIPE_SZ)
                wait_for(lambda: pipe_bytes(read_fd) > capacity // 2, 20, what="the writers to fill the pipe")
                settled(lambda: pipe_bytes(read_fd), quiet=0.2)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                data = reader.read1(65536)
                if not data:
                    break
                chunks.append(data)
    except BaseException:
        for proc in procs:  # writers still waiting for room in the pipe
            proc.kill()
            proc.wait(5)
        raise
    for proc in procs:
        assert proc.wait(30) == 0
    lines = b"".join(chunks).decode().splitlines()
    assert len(lines) == 4 * 300
    counts = dict.fromkeys("abcd", 0)
    for line in lines:
        record = json.loads(line)
        tag, index, body = record["msg"].split("-")
        assert body == tag * 3500
        assert int(index) == counts[tag]  # each process's records stay in order
        counts[tag] += 1


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["process", "thread"])
def test_workers_log_whole_json_lines_with_their_ids(pounce_process: Any, mode: str) -> None:
    """Several workers answer concurrent requests: one whole JSON line per
    request, each carrying the id of the worker that served it."""
    from concurrent.futures import ThreadPoolExecutor

    proc, url = start(pounce_process, "testapps:hello", "--host", "127.0.0.1", "--port", "0",
                      "--workers", "2", "--worker-mode", mode, "--log-format", "json")
    wait_for(lambda: "serving with" in proc.output(), 15, what=proc.output)

    def hammer(index: int) -> int:
        with httpx.Client() as client:
            return sum(client.get(f"{url}/{index}/{n}").status_code == 200 for n in range(25))

    with ThreadPoolExecutor(8) as pool:
        answered = sum(pool.map(hammer, range(8)))
    assert answered == 200
    records = json_lines(stop(proc))
    access = [r for r in records if r["logger"] == "pounce.access"]
    assert len(access) == 200
    assert {r["worker"] for r in access} <= {1, 2}
    assert all(ACCESS_KEYS <= set(r) and r["status"] == 200 for r in access)
    assert sorted(r["path"] for r in access) == sorted(f"/{i}/{n}" for i in range(8) for n in range(25))


@pytest.mark.slow
def test_dict_config_path_is_relative_to_its_toml_and_explicit_level_wins(pounce_process: Any,
                                                                          tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    (sub / "pounce.toml").write_text('[logging]\nconfig_file = "logging.json"\n')
    (sub / "logging.json").write_text(json.dumps({
        "formatters": {"f": {"format": "DICT %(levelname)s %(name)s %(message)s"}},
        "handlers": {"h": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "f"}},
        "loggers": {"pounce": {"level": "ERROR", "handlers": ["h"], "propagate": False}},
    }))
    # The file says ERROR; the explicit --log-level info on the command line wins.
    proc, url = start(pounce_process, "testapps:hello", "--host", "127.0.0.1", "--port", "0",
                      "--config", str(sub / "pounce.toml"), "--log-level", "info")
    httpx.get(url + "/rel")
    output = stop(proc)
    assert "DICT INFO pounce.server listening on" in output
    assert 'DICT INFO pounce.access 127.0.0.1:' in output and "/rel HTTP/1.1" in output


WS_APP = '''
async def app(scope, receive, send):
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})
'''


def test_websocket_handshake_gets_an_access_record(pounce_process: Any, tmp_path: Path) -> None:
    (tmp_path / "wsapp.py").write_text(WS_APP)
    proc, url = start(pounce_process, "wsapp:app", "--host", "127.0.0.1", "--port", "0", "--log-format", "json")
    with connect(proc.port, timeout=10) as sock:
        sock.sendall(b"GET /chat?room=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        assert read_until(sock, b"\r\n\r\n", timeout=10).startswith(b"HTTP/1.1 101")
    wait_for(lambda: '"status":101' in proc.output(), what=proc.output)  # the access record is out
    records = json_lines(stop(proc))
    [access] = [r for r in records if r["logger"] == "pounce.access"]
    assert access["status"] == 101 and access["method"] == "GET"
    assert access["path"] == "/chat" and access["query"] == "room=1"
    assert '"GET /chat?room=1 HTTP/1.1" 101' in access["msg"]


class _WorkerSpy:
    """A plugin that keeps the request observers each worker was given."""

    def __init__(self) -> None:
        self.observers: list[tuple[Any, ...]] = []

    @hookimpl
    def pounce_worker_started(self, worker: Any) -> None:
        self.observers.append(worker.ctx.observers)


@pytest.mark.parametrize(("overrides", "expected"), [
    ({}, 1),
    ({"logging_access_log": False}, 0),
    ({"logging_level": "warning"}, 0),
])
def test_access_log_off_means_no_observer_at_all(overrides: dict[str, Any], expected: int) -> None:
    """Off (or filtered out by level) the access log adds nothing to the
    request path: the worker gets no observer to call."""
    import logging

    from pounce.testing import ServerThread
    from testapps import hello

    spy = _WorkerSpy()
    with ServerThread(hello, plugins=[spy], **overrides) as srv:
        assert httpx.get(srv.url + "/").status_code == 200
        assert logging.getLogger("asyncio").propagate is False  # event-loop errors in pounce's format
    assert [len(o) for o in spy.observers] == [expected]
    assert logging.getLogger("asyncio").propagate is True  # given back after the server closed


WARN_APP = '''
import warnings

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    warnings.warn("old API used", DeprecationWarning, stacklevel=1)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
'''


@pytest.mark.slow
def test_warnings_and_loop_errors_stay_in_the_json_stream(pounce_process: Any, tmp_path: Path) -> None:
    (tmp_path / "warnapp.py").write_text(WARN_APP)
    proc, url = start(pounce_process, "warnapp:app", "--host", "127.0.0.1", "--port", "0", "--log-format", "json",
                      env={"PYTHONWARNINGS": "always"})
    httpx.get(url + "/")
    records = json_lines(stop(proc))  # every line parses
    [warning] = [r for r in records if r["logger"] == "py.warnings"]
    assert warning["level"] == "warning" and "DeprecationWarning: old API used" in warning["msg"]
