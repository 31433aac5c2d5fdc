"""Run the hostile-input corpus (tests/http_corpus.py) against pounce and
uvicorn (``--http h11``, the same parser) side by side and print a table.

    .venv/bin/python benchmarks/corpus_compare.py [--markdown]

Each server runs as a subprocess serving ``http_corpus:corpus_app`` on a free
port. For every case the table shows the status answered (``-`` for none),
``c`` when the connection was closed afterwards, ``A`` when the app answered,
and ``!`` when the server did not answer the valid request sent next (a dead
worker). A case "differs" when the two outcomes are not the same; ``ok``
says whether each server met the corpus's expectation.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from http_corpus import CORPUS, Case, Outcome, run_case, valid_request  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(name: str, port: int) -> subprocess.Popen[bytes]:
    python = sys.executable
    if name == "pounce":
        args = [python, "-m", "pounce", "http_corpus:corpus_app", "--port", str(port),
                "--lifespan", "off", "--no-access-log", "--log-level", "warning"]
    else:
        args = [python, "-m", "uvicorn", "http_corpus:corpus_app", "--http", "h11", "--port", str(port),
                "--lifespan", "off", "--no-access-log", "--log-level", "warning"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), str(ROOT)])
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}") from None
            time.sleep(0.1)
    proc.kill()
    raise TimeoutError(f"{name} did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def run_all(name: str) -> list[tuple[Outcome, bool]]:
    port = free_port()
    proc = start(name, port)
    results = []
    try:
        for case in CORPUS:
            outcome = run_case(("127.0.0.1", port), case)
            follow = run_case(("127.0.0.1", port), Case("valid", valid_request(b"/after"), (200,)))
            results.append((outcome, follow.status == 200 and proc.poll() is None))
    finally:
        stop(proc)
    return results


def describe(outcome: Outcome, alive: bool) -> str:
    text = str(outcome.status) if outcome.status is not None else "-"
    if outcome.closed:
        text += " c"
    if outcome.app:
        text += " A"
    if not alive:
        text += " !"
    return text


def meets(case: Case, outcome: Outcome, alive: bool) -> bool:
    if outcome.status not in case.expect or not alive:
        return False
    if case.closed and not outcome.closed:
        return False
    if case.app is True and not outcome.app:
        return False
    return not (case.app is False and outcome.app)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()
    pounce = run_all("pounce")
    uvicorn = run_all("uvicorn")
    rows = []
    for case, (p_out, p_alive), (u_out, u_alive) in zip(CORPUS, pounce, uvicorn, strict=True):
        p_text, u_text = describe(p_out, p_alive), describe(u_out, u_alive)
        rows.append((case.name, "/".join(map(str, case.expect)), p_text,
                     "yes" if meets(case, p_out, p_alive) else "NO", u_text,
                     "yes" if meets(case, u_out, u_alive) else "NO", "*" if p_text != u_text else ""))
    header = ("case", "expected", "pounce", "ok", "uvicorn h11", "ok", "differs")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    p_ok = sum(r[3] == "yes" for r in rows)
    u_ok = sum(r[5] == "yes" for r in rows)
    print(f"\n{len(rows)} cases: pounce meets {p_ok}, uvicorn (h11) meets {u_ok}; "
          f"{sum(r[6] == '*' for r in rows)} differ. Legend: c closed, A app answered, ! worker not serving after.")
    return 0 if p_ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
