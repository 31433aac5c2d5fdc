"""The hostile-input corpus (tests/reliability/http_corpus.py) against a real pounce.

Every case: the documented status, a closed connection, the app never called
for a refused request, and the worker still answering a valid request next.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pounce.testing import LogRecords, ServerThread, capture_logs
from tests.reliability.http_corpus import CORPUS, Case, corpus_app, run_case, valid_request


class Recorder:
    """Wraps the corpus app and remembers every scope it was called with."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.calls.append(scope)
        await corpus_app(scope, receive, send)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[ServerThread, Recorder, LogRecords]]:
    recorder = Recorder()
    with capture_logs() as errors, ServerThread(recorder, lifespan="off", logging_access_log=False) as srv:
        yield srv, recorder, errors


# A case the server may keep open is read until run_case's 2 s timeout.
CASES = [case if case.closed else pytest.param(case, marks=pytest.mark.slow) for case in CORPUS]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CORPUS])
def test_corpus_case(server: tuple[ServerThread, Recorder, LogRecords], case: Case) -> None:
    srv, recorder, errors = server
    address = ("127.0.0.1", srv.port)
    before = len(recorder.calls)
    outcome = run_case(address, case)
    assert outcome.status in case.expect, f"{case.name}: got {outcome.status}, raw={outcome.raw[:200]!r}"
    if case.closed:
        assert outcome.closed, f"{case.name}: connection left open"
    called = len(recorder.calls) > before
    if case.app:
        assert called and outcome.app
    elif case.app is False:
        assert not called, f"{case.name}: reached the app with {recorder.calls[-1]}"
        assert not outcome.app
    # The worker is still serving.
    follow = run_case(address, Case("valid", valid_request(b"/after"), (200,)))
    assert follow.status == 200 and follow.app
    assert not errors.records, errors.messages()


def test_absolute_form_scope(server: tuple[ServerThread, Recorder, LogRecords]) -> None:
    srv, recorder, _ = server
    case = next(c for c in CORPUS if c.name == "absolute-form target")
    run_case(("127.0.0.1", srv.port), case)
    scope = recorder.calls[-1]
    assert scope["path"] == "/p" and scope["query_string"] == b"q=1"
    hosts = [v for n, v in scope["headers"] if n == b"host"]
    assert hosts == [b"other.example"]


def test_options_star_scope(server: tuple[ServerThread, Recorder, LogRecords]) -> None:
    srv, recorder, _ = server
    case = next(c for c in CORPUS if c.name == "OPTIONS *")
    run_case(("127.0.0.1", srv.port), case)
    scope = recorder.calls[-1]
    assert scope["method"] == "OPTIONS" and scope["path"] == "*" and scope["raw_path"] == b"*"


def test_corpus_smuggling_in_pipeline(server: tuple[ServerThread, Recorder, LogRecords]) -> None:
    """A valid request followed on the same connection by a smuggling attempt:
    the first is answered, the second refused, nothing after it is parsed."""
    srv, recorder, _ = server
    before = len(recorder.calls)
    data = (
        b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /second HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    outcome = run_case(("127.0.0.1", srv.port), Case("pipeline", data, (200,)))
    assert outcome.raw.count(b"HTTP/1.1 ") == 2
    assert b" 400 " in outcome.raw and outcome.closed
    paths = [s["path"] for s in recorder.calls[before:]]
    assert paths == ["/first"]
