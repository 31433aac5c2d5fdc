"""Shared fixtures: real servers on real sockets, always stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pounce.testing import LogRecords, ServerProcess, ServerThread, capture_logs
from tests.helpers import subprocess_env


@pytest.fixture
def serve() -> Iterator[Any]:
    """``serve(app, **overrides)`` starts a ServerThread, stopped at teardown."""
    started: list[ServerThread] = []

    def start(app: Any, **kwargs: Any) -> ServerThread:
        server = ServerThread(app, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def pounce_process(tmp_path: Path) -> Iterator[Any]:
    """``pounce_process(*args, **kw)`` starts ``pounce`` as a subprocess
    (cwd defaults to tmp_path, test apps importable), stopped at teardown."""
    started: list[ServerProcess] = []

    def start(*args: str, cwd: Any = None, env: dict[str, str] | None = None, **kw: Any) -> ServerProcess:
        full_env = subprocess_env(env)
        proc = ServerProcess(list(args), cwd=cwd or tmp_path, env=full_env, **kw)
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.__exit__(None, None, None)


@pytest.fixture
def errors() -> Iterator[LogRecords]:
    """ERROR records of pounce and asyncio during the test (``errors.records``)."""
    with capture_logs() as records:
        yield records


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[int]:
    """A headless Chromium with remote debugging (tests/browser.py); yields
    its DevTools port."""
    from tests.browser import launch_chromium

    with launch_chromium(tmp_path / "profile") as port:
        yield port
