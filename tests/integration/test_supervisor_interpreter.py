"""What only interpreter workers have: the Python version they need, the
error for a module that cannot live in a subinterpreter, and workers that are
interpreters of one process. (The supervisor's guarantees in interpreter mode
are the mode-generic tests of test_supervisor_process.py and
test_supervisor.py.)"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from supervisorapps import Load

from pounce.testing import ServerProcess, run_pounce, wait_for
from tests.helpers import APPS, subprocess_env

PYTHONPATH = str(APPS)

before_3_14 = pytest.mark.skipif(sys.version_info >= (3, 14), reason="checks the error below Python 3.14")
from_3_14 = pytest.mark.skipif(sys.version_info < (3, 14), reason="interpreter workers need Python 3.14+")


def wait_output(proc: ServerProcess, text: str, timeout: float = 20.0) -> None:
    wait_for(lambda: text in proc.output(), timeout, what=lambda: f"{text!r} in:\n{proc.output()}")


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("pounce: error:")]


@before_3_14
def test_interpreter_mode_below_3_14_is_a_config_error_naming_the_version(tmp_path: Path) -> None:
    version = ".".join(map(str, sys.version_info[:3]))
    # On the command line ...
    result = run_pounce(["testapps:hello", "--workers", "2", "--worker-mode", "interpreter"],
                        cwd=tmp_path, env=subprocess_env())
    assert result.returncode == 2, result.stderr
    [line] = error_lines(result.stderr)
    assert "--worker-mode" in line and "3.14" in line and version in line and "found 'interpreter'" in line
    assert "Traceback" not in result.stderr
    # ... in pounce.toml: file, section, key, expected and found ...
    (tmp_path / "pounce.toml").write_text('[server]\napp = "testapps:hello"\nworker_mode = "interpreter"\n')
    result = run_pounce(["--check"], cwd=tmp_path, env=subprocess_env())
    assert result.returncode == 2, result.stderr
    [line] = error_lines(result.stderr)
    assert "pounce.toml" in line and "[server] worker_mode" in line and "3.14" in line
    assert "found 'interpreter'" in line
    # ... and in the environment.
    (tmp_path / "pounce.toml").unlink()
    result = run_pounce(["testapps:hello", "--check"], cwd=tmp_path,
                        env=subprocess_env({"POUNCE_SERVER_WORKER_MODE": "interpreter"}))
    assert result.returncode == 2, result.stderr
    assert "POUNCE_SERVER_WORKER_MODE" in result.stderr and "3.14" in result.stderr


@from_3_14
def test_interpreter_mode_is_accepted_from_3_14(tmp_path: Path) -> None:
    result = run_pounce(["testapps:hello", "--workers", "2", "--worker-mode", "interpreter", "--check"],
                        cwd=tmp_path, env=subprocess_env())
    assert result.returncode == 0, result.stderr
    assert re.search(r'worker_mode = "interpreter"', result.stdout), result.stdout


def _loads_in_a_subinterpreter(module: str) -> bool:
    code = (
        "from concurrent import interpreters\n"
        "interp = interpreters.create()\n"
        f"try:\n    interp.exec('import {module}')\n"
        "except interpreters.ExecutionFailed:\n    print('refused')\n"
        "finally:\n    interp.close()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         check=True, env=subprocess_env())
    return "refused" not in out.stdout


@from_3_14
def test_a_module_that_cannot_load_in_a_subinterpreter_is_named_in_one_line(pounce_process: Any,
                                                                              tmp_path: Path) -> None:
    # watchfiles (pounce's own dependency, for reload) is a PyO3 extension:
    # single-phase init, which CPython refuses to load in a subinterpreter.
    if _loads_in_a_subinterpreter("watchfiles"):
        pytest.skip("watchfiles loads in subinterpreters now: no incompatible module to try")
    (tmp_path / "needs_watchfiles.py").write_text(
        "import watchfiles  # noqa: F401\n\n"
        "async def app(scope, receive, send):\n"
        "    pass\n"
    )
    started = time.monotonic()
    result = run_pounce(["needs_watchfiles:app", "--port", "0", "--workers", "2", "--worker-mode", "interpreter"],
                        cwd=tmp_path, env=subprocess_env({"PYTHONPATH": str(tmp_path)}), timeout=60)
    assert result.returncode == 1, result.stderr
    assert time.monotonic() - started < 30  # no restart storm: the first failure decides
    [line] = error_lines(result.stderr)
    assert "module 'watchfiles._rust_notify' cannot be loaded in a subinterpreter" in line, line
    assert 'worker_mode = "process"' in line
    assert "Traceback" not in result.stderr
    # The same app serves in process mode, as the message says.
    proc = pounce_process("needs_watchfiles:app", "--port", "0", "--workers", "2", "--worker-mode", "process",
                          cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    wait_output(proc, "serving with 2 process workers")


def children(pid: int) -> list[int]:
    """Child processes of ``pid`` (any of its threads)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out.extend(int(p) for p in text)
    return out


@from_3_14
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_interpreter_workers_are_interpreters_of_one_process(pounce_process: Any) -> None:
    proc = pounce_process("supervisorapps:app", "--port", "0", "--workers", "2",
                          "--worker-mode", "interpreter", env={"PYTHONPATH": PYTHONPATH})
    wait_output(proc, "serving with 2 interpreter workers")
    assert proc.proc is not None
    pid = proc.proc.pid
    assert children(pid) == []  # no worker processes
    load = Load(proc.url, seconds=1.5, concurrency=4, path="/?sleep=0.01")
    try:
        results = load.finish()
    finally:
        load.kill()
    assert results and load.errors() == []
    bodies = [r["info"].split() for r in results]
    # Each answer came from one of the two interpreters inside the server's process (the
    # kernel decides which worker accepts), on a thread named as in thread mode, with its
    # own module globals and lifespan.
    ready = {f"{pid}/{i}" for i in re.findall(r"\(interpreter (\d+)\) ready", proc.output())}
    assert len(ready) == 2 and {b[0] for b in bodies} <= ready
    assert {b[1] for b in bodies} <= {"pounce-worker-1", "pounce-worker-2"}
    assert all(b[0] == b[2] and b[3] == "1" for b in bodies)
