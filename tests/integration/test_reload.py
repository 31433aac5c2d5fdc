"""The reload plugin, end to end: a real temp project, a real ``pounce
--reload`` process, real file edits, real HTTP requests (bounded polling).

The app imports ``helper1``, which imports ``helper2``: editing ``helper2``
proves a module two imports deep is never stale. Every response carries the
serving process id so tests can tell which server process answered.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from pounce.testing import ServerThread, run_pounce, wait_for
from tests.helpers import holds, subprocess_env

APP = '''\
import os

import helper1


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = f"{helper1.value()} pid={os.getpid()}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
'''

HELPER1 = '''\
import helper2


def value():
    return "v=" + helper2.VALUE
'''


def helper2(value: str, *, slow: float = 0.0) -> str:
    """Source of the innermost helper; ``slow`` delays its import (a slow app
    start), which the server process says on its output as it begins."""
    pre = f"import time\nprint('helper2: slow import', flush=True)\ntime.sleep({slow})\n" if slow else ""
    return f"{pre}VALUE = {value!r}\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "helper1.py").write_text(HELPER1)
    (tmp_path / "helper2.py").write_text(helper2("one"))
    return tmp_path


def get(url: str, timeout: float = 10.0) -> str:
    """One request on a fresh connection (no keep-alive across reloads)."""
    return httpx.get(url, timeout=timeout, headers={"connection": "close"}).text


def value_of(text: str) -> str:
    return text.split(" ")[0]


def pid_of(text: str) -> int:
    return int(text.rsplit("pid=", 1)[1])


def wait_value(url: str, expected: str, timeout: float = 20.0) -> str:
    """Poll until the app answers ``v=expected``; returns the full body."""
    seen: list[str] = []

    def check() -> str | None:
        text = get(url)
        seen.append(value_of(text))
        return text if value_of(text) == f"v={expected}" else None

    try:
        return wait_for(check, timeout, what=f"v={expected}")
    except TimeoutError:
        raise AssertionError(f"never saw v={expected}; last answers: {seen[-5:]}") from None


def count(proc: Any, pattern: str) -> int:
    return len(re.findall(pattern, proc.output()))


def changes(proc: Any) -> list[str]:
    """What each "detected changes" line named, in order."""
    return re.findall(r"detected changes in (.*); reloading", proc.output())


def child_pids(proc: Any) -> set[int]:
    """Every server process the parent reported serving."""
    text = proc.output()
    return {int(p) for p in re.findall(r"process (\d+) serves the new code", text)} | {
        int(p) for p in re.findall(r"server process (\d+) is serving", text)}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def start(pounce_process: Any, project: Path, *extra: str) -> Any:
    proc = pounce_process("app:app", "--reload", "--port", "0", "--reload-dir", str(project), *extra,
                          cwd=project)
    wait_for(lambda: count(proc, r"is serving") >= 1, 20, what="the first server process")
    return proc


def edit(path: Path, text: str) -> None:
    """Rewrite a module, its mtime moved past the old one's second: a .pyc is
    checked against its source's size and whole-second mtime, so an edit of
    the same length within the same second would load stale bytecode."""
    before = int(path.stat().st_mtime) if path.exists() else -1
    path.write_text(text)
    if int(path.stat().st_mtime) <= before:
        os.utime(path, (before + 1, before + 1))


# -- reload serves the new code ------------------------------------------------------


@pytest.mark.slow
def test_module_two_imports_deep_is_reloaded(pounce_process: Any, project: Path) -> None:
    proc = start(pounce_process, project)
    first = get(proc.url)
    assert value_of(first) == "v=one"
    edit(project / "helper2.py", helper2("two"))
    second = wait_value(proc.url, "two")
    assert pid_of(second) != pid_of(first)  # a fresh interpreter, not a reimport
    wait_for(lambda: count(proc, r"reload complete") >= 1, 20, what="the reload to complete")
    # Once the reload is complete nothing stale answers any more.
    for _ in range(10):
        assert value_of(get(proc.url)) == "v=two"
    out = proc.output()
    assert re.search(r"detected changes in \S*helper2\.py; reloading", out)
    assert not alive(pid_of(first))
    # The parent said what it watches.
    assert re.search(r"reload: watching \S+ \(include \*\.py; exclude", out)


@pytest.mark.slow
def test_multi_worker_rolls_to_fresh_workers(pounce_process: Any, project: Path) -> None:
    proc = start(pounce_process, project, "--workers", "2", "--worker-mode", "process")
    old = {pid_of(get(proc.url)) for _ in range(8)}
    edit(project / "helper1.py", HELPER1.replace('"v="', '"v=" + "x"'))
    wait_value(proc.url, "xone")
    wait_for(lambda: count(proc, r"reload complete") >= 1, 30, what="the reload to complete")
    new = {pid_of(get(proc.url)) for _ in range(8)}
    assert not new & old, "a worker of the previous version still serves"
    assert all(value_of(get(proc.url)) == "v=xone" for _ in range(6))
    wait_for(lambda: not any(alive(p) for p in old), 20, what="old workers to exit")

    # Broken code: the workers of the last good version keep serving.
    edit(project / "helper2.py", "VALUE = (\n")
    wait_for(lambda: count(proc, r"ERROR") >= 1, 20, what="the syntax error to be reported")
    errors = [line for line in proc.output().splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "helper2.py:1" in errors[0], errors
    during = [get(proc.url) for _ in range(6)]
    assert all(value_of(t) == "v=xone" and pid_of(t) not in old for t in during)
    edit(project / "helper2.py", helper2("fixed"))
    wait_value(proc.url, "xfixed")


# -- broken code keeps the last good version ------------------------------------


@pytest.mark.slow
def test_broken_then_fixed(pounce_process: Any, project: Path) -> None:
    proc = start(pounce_process, project)
    assert value_of(get(proc.url)) == "v=one"
    good_pid = pid_of(get(proc.url))

    edit(project / "helper2.py", 'VALUE = "unterminated\n')
    wait_for(lambda: count(proc, r"ERROR") >= 1, 20, what="the syntax error to be reported")
    out = proc.output()
    errors = [line for line in out.splitlines() if "ERROR" in line]
    assert len(errors) == 1, errors
    assert "SyntaxError" in errors[0] and "helper2.py:1" in errors[0]
    assert "still serving the previous version" in errors[0]
    assert "Traceback" not in out
    for _ in range(5):  # the last good version still answers
        text = get(proc.url)
        assert value_of(text) == "v=one" and pid_of(text) == good_pid

    edit(project / "helper2.py", "import no_such_module_here\nVALUE = 'x'\n")
    wait_for(lambda: count(proc, r"ERROR") >= 2, 20, what="the import error to be reported")
    errors = [line for line in proc.output().splitlines() if "ERROR" in line]
    assert len(errors) == 2 and "no_such_module_here" in errors[1] and "helper2.py:1" in errors[1]
    assert pid_of(get(proc.url)) == good_pid

    edit(project / "helper2.py", helper2("fixed"))
    wait_value(proc.url, "fixed")
    assert count(proc, r"ERROR") == 2


LIFESPAN_APP = APP + '''

_plain = app


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        message = await receive()
        if helper1.value() == "v=bad":
            await send({"type": "lifespan.startup.failed", "message": "helper2 says bad"})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    await _plain(scope, receive, send)
'''


@pytest.mark.slow
def test_failing_at_startup_waits_for_a_fix(pounce_process: Any, project: Path) -> None:
    """The first server process fails (its lifespan startup refuses): one
    error, the port stays bound, and the fix starts a server."""
    (project / "app.py").write_text(LIFESPAN_APP)
    (project / "helper2.py").write_text(helper2("bad"))
    proc = pounce_process("app:app", "--reload", "--port", "0", "--reload-dir", str(project), cwd=project)
    wait_for(lambda: count(proc, r"ERROR") >= 1, 20, what="the startup failure")
    errors = [line for line in proc.output().splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "helper2 says bad" in errors[0] and "at startup" in errors[0], errors
    assert proc.proc.poll() is None  # the parent keeps the port and waits
    edit(project / "helper2.py", helper2("good"))
    wait_value(proc.url, "good")


@pytest.mark.slow
def test_change_during_a_slow_start_supersedes_it(pounce_process: Any, project: Path) -> None:
    """A save while the new version is still importing: that version is
    already stale, so it is dropped and the newest one is started."""
    proc = start(pounce_process, project)
    edit(project / "helper2.py", helper2("stale", slow=3.0))
    wait_for(lambda: count(proc, r"helper2: slow import") >= 1, 20, what="the stale version to be importing")
    edit(project / "helper2.py", helper2("newest"))
    wait_value(proc.url, "newest")
    wait_for(lambda: count(proc, r"reload complete") >= 1, 20, what="the reload to complete")
    assert count(proc, r"ERROR") == 0, proc.output()
    assert count(proc, r"reloaded in") == 1  # the stale version never served
    time.sleep(3.0)  # the stale version's 3 s import: had it not been dropped, it would serve now
    assert all(value_of(get(proc.url)) == "v=newest" for _ in range(5))


# -- the port is never dropped --------------------------------------------------------


@pytest.mark.slow
def test_requests_during_reload_are_all_served(pounce_process: Any, project: Path) -> None:
    """Clients keep coming through ten reloads, on fresh connections and on
    one keep-alive client: every request gets an answer, none is reset.
    (Without the accept grace in pounce_worker_started about one reload in
    15 lost a request under this load.)"""
    proc = start(pounce_process, project)
    assert value_of(get(proc.url)) == "v=one"
    results: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def hammer(keep_alive: bool) -> None:
        client = httpx.Client(timeout=10) if keep_alive else None
        while not stop.is_set():
            try:
                text = client.get(proc.url).text if client else get(proc.url)
                results.append(value_of(text))
            except httpx.HTTPError as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
        if client:
            client.close()

    threads = [threading.Thread(target=hammer, args=(k,), daemon=True) for k in (False, False, False, True)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: results.count("v=one") > 10, what="requests to the first version")
        for i, slow in enumerate((1.0,) + (0.0,) * 9):
            # The first new version takes a second to import; requests keep coming.
            edit(project / "helper2.py", helper2(f"r{i}", slow=slow))
            wait_for(lambda i=i: f"v=r{i}" in results[-3:], 30, what=f"version r{i}")
            wait_for(lambda i=i: count(proc, r"reload complete") >= i + 1, 20, what="the reload to complete")
        served = len(results)
        wait_for(lambda: len(results) > served + 5, what="requests after the last reload")
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    assert not failures, failures[:5]
    assert results.count("v=one") > 10 and results.count("v=r0") > 5
    assert results[-1] == "v=r9"


@pytest.mark.slow
def test_connections_wait_in_backlog_while_nothing_serves(pounce_process: Any, project: Path) -> None:
    """The parent's banner is out before the (slow) first server process
    serves; a client connecting then is queued by the kernel and served."""
    (project / "helper2.py").write_text(helper2("slow", slow=1.5))
    proc = pounce_process("app:app", "--reload", "--port", "0", "--reload-dir", str(project), cwd=project)
    assert count(proc, r"is serving") == 0
    began = time.monotonic()
    assert value_of(get(proc.url, timeout=20)) == "v=slow"
    assert time.monotonic() - began > 0.5  # it did wait for the import


# -- what is watched ---------------------------------------------------------------------


@pytest.mark.slow
def test_ignored_files_do_not_reload_and_bursts_reload_once(pounce_process: Any, project: Path) -> None:
    (project / ".git").mkdir()
    (project / "pkg").mkdir()
    (project / "pkg" / "__pycache__").mkdir(parents=True)
    proc = start(pounce_process, project)
    # Noise: git data, bytecode, editor swap/backup files, a non-.py file.
    (project / ".git" / "index.py").write_text("x = 1\n")
    (project / "pkg" / "__pycache__" / "mod.cpython-311.py").write_text("x = 1\n")
    (project / ".helper2.py.swp").write_text("swap")
    (project / "helper2.py~").write_text("backup")
    (project / "4913").write_text("")
    (project / ".#helper2.py").write_text("lock")
    (project / "notes.txt").write_text("not python")
    # Then one real change: the reload it causes names that file alone (noise
    # that got through would be in that line or in one before it).
    edit(project / "helper2.py", helper2("clean"))
    wait_value(proc.url, "clean")
    assert changes(proc) == ["helper2.py"], proc.output()

    # A burst of saves across several files is one reload.
    for i in range(5):
        (project / f"mod{i}.py").write_text(f"X = {i}\n")
        time.sleep(0.02)  # the burst: saves 20 ms apart, inside one debounce window
    edit(project / "helper2.py", helper2("burst"))
    wait_value(proc.url, "burst")
    # One more change after it: had the burst been split, a second reload
    # for part of it would come before this one.
    edit(project / "helper2.py", helper2("after"))
    wait_value(proc.url, "after")
    seen = changes(proc)
    assert len(seen) == 3 and seen[2] == "helper2.py", proc.output()
    assert "mod0.py" in seen[1] and "helper2.py" in seen[1]


@pytest.mark.slow
def test_include_exclude_and_several_dirs(pounce_process: Any, project: Path) -> None:
    (project / "templates").mkdir()
    (project / "templates" / "page.html").write_text("<p>1</p>")
    (project / "vendor").mkdir()
    other = project / "lib"
    other.mkdir()
    (other / "helper2.py").write_text(helper2("lib"))
    (project / "helper2.py").unlink()
    proc = pounce_process(
        "app:app", "--reload", "--port", "0", "--reload-dir", str(project / "templates"),
        "--reload-dir", str(other), "--reload-include", "*.py,*.html", "--reload-exclude", "skip_*",
        cwd=project, env={"PYTHONPATH": str(other) + os.pathsep + subprocess_env()["PYTHONPATH"]},
    )
    wait_for(lambda: count(proc, r"is serving") >= 1, 20, what="the first server process")
    assert value_of(get(proc.url)) == "v=lib"
    banner = re.search(r"reload: watching (.*)", proc.output())
    assert banner and "templates" in banner.group(1) and "lib" in banner.group(1)

    (other / "skip_me.py").write_text("x = 1\n")  # excluded by glob
    (project / "app_notes.py").write_text("x = 1\n")  # outside the watched dirs
    (project / "templates" / "page.html").write_text("<p>2</p>")  # included by glob
    wait_for(lambda: count(proc, r"reload complete") >= 1, 20, what="a reload for the template")
    [seen] = changes(proc)
    assert seen.endswith("page.html") and ", " not in seen, proc.output()

    (other / "helper2.py").write_text(helper2("lib2"))  # the second directory
    wait_value(proc.url, "lib2")


# -- stopping, errors, --check ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_parent_and_children(pounce_process: Any, project: Path, signum: int) -> None:
    proc = start(pounce_process, project)
    first = pid_of(get(proc.url))
    edit(project / "helper2.py", helper2("two"))
    second = pid_of(wait_value(proc.url, "two"))
    proc.signal(signum)
    assert proc.wait(20) == 0
    wait_for(lambda: not alive(first) and not alive(second), 20, what="children to exit")
    assert child_pids(proc) >= {second}


SLOW_APP = '''\
import asyncio
import os


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        print("slow request started", flush=True)
        await asyncio.sleep(60)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": f"pid={os.getpid()}".encode()})
'''


@pytest.mark.slow
def test_second_signal_forces_exit(pounce_process: Any, project: Path) -> None:
    (project / "slow.py").write_text(SLOW_APP)
    proc = pounce_process("slow:app", "--reload", "--port", "0", "--reload-dir", str(project), cwd=project)
    wait_for(lambda: count(proc, r"is serving") >= 1, 20, what="the server process")
    child = pid_of(get(proc.url))
    outcome: list[str] = []

    def slow_request() -> None:
        try:
            outcome.append(httpx.get(proc.url + "/slow", timeout=30).text)
        except httpx.HTTPError as exc:
            outcome.append(type(exc).__name__)

    thread = threading.Thread(target=slow_request, daemon=True)
    thread.start()
    wait_for(lambda: "slow request started" in proc.output(), what=proc.output)
    began = time.monotonic()
    proc.signal(signal.SIGTERM)
    holds(lambda: proc.proc.poll() is None, 0.5, "draining while the slow request runs")
    proc.signal(signal.SIGTERM)
    proc.wait(15)
    assert time.monotonic() - began < 10
    wait_for(lambda: not alive(child), 10, what="the child to exit")
    thread.join(10)
    assert outcome and not outcome[0].startswith("pid=")  # aborted, not completed


@pytest.mark.slow
def test_crashed_server_process_is_replaced(pounce_process: Any, project: Path) -> None:
    proc = start(pounce_process, project)
    child = pid_of(get(proc.url))
    time.sleep(2.2)  # served long enough not to count as a crash loop
    os.kill(child, signal.SIGKILL)
    text = get(proc.url, timeout=20)  # waits in the backlog for the replacement
    assert value_of(text) == "v=one" and pid_of(text) != child
    assert re.search(rf"server process {child} exited with status -9; starting a new one", proc.output())


@pytest.mark.slow
def test_max_requests_recycles_the_server_process(pounce_process: Any, project: Path) -> None:
    proc = start(pounce_process, project, "--limit-max-requests", "3")
    pids = [pid_of(get(proc.url)) for _ in range(7)]
    assert len(set(pids)) >= 3, pids  # recycled after every 3 requests, none refused


def test_killed_parent_leaves_no_orphan(pounce_process: Any, project: Path) -> None:
    proc = start(pounce_process, project)
    child = pid_of(get(proc.url))
    proc.signal(signal.SIGKILL)
    proc.wait(10)
    # The child sees its control pipe close and shuts down by itself.
    wait_for(lambda: not alive(child), 20, what="the orphaned child to exit")


def test_missing_reload_dir_is_a_config_error(project: Path) -> None:
    result = run_pounce(["app:app", "--reload", "--reload-dir", "nope"], cwd=project, env=subprocess_env())
    assert result.returncode == 2
    assert "[reload] dirs" in result.stderr and "nope" in result.stderr


def test_reload_needs_an_import_string() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    server = ServerThread(app, reload_enabled=True)
    with pytest.raises(Exception, match="import string"):
        server.start()


@pytest.mark.parametrize(("args", "warns"), [
    (["--workers", "3", "--worker-mode", "process"], True),
    (["--workers", "3", "--worker-mode", "thread"], False),
    (["--workers", "1", "--worker-mode", "process"], False),
])
def test_check_warns_only_for_process_workers(project: Path, args: list[str], warns: bool) -> None:
    """reload + several process workers has a real cost (each reload imports
    the app in every new worker process); thread workers or one worker do not."""
    result = run_pounce(["app:app", "--reload", *args, "--check"], cwd=project, env=subprocess_env())
    assert result.returncode == 0, result.stderr
    assert "enabled = true" in result.stdout
    warnings = [line for line in result.stdout.splitlines() if line.startswith("# warning:")]
    if warns:
        assert len(warnings) == 1 and "3 process workers" in warnings[0], warnings
    else:
        assert warnings == []
    # Without --reload the same worker settings never warn about reload.
    plain = run_pounce(["app:app", *args, "--check"], cwd=project, env=subprocess_env())
    assert not [line for line in plain.stdout.splitlines() if line.startswith("# warning: reload")]
