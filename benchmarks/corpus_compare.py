"""Run the hostile-input corpus (tests/reliability/http_corpus.py) against pounce,
uvicorn (``--http h11``, the same parser) and, when installed, hypercorn
(also h11 underneath) side by side and print a table.

    .venv/bin/pip install uvicorn hypercorn     # comparison servers only
    .venv/bin/python benchmarks/corpus_compare.py [--markdown]

Each server runs as a subprocess serving ``http_corpus:corpus_app`` on a free
port. For every case the table shows the status answered (``-`` for none),
``c`` when the connection was closed afterwards, ``A`` when the app answered,
and ``!`` when the server did not answer the valid request sent next (a dead
worker). A case "differs" when another server's outcome is not pounce's;
``ok`` says whether each server met the corpus's expectation.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "reliability"), str(ROOT)]

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
    elif name == "uvicorn":
        args = [python, "-m", "uvicorn", "http_corpus:corpus_app", "--http", "h11", "--port", str(port),
                "--lifespan", "off", "--no-access-log", "--log-level", "warning"]
    else:
        args = [python, "-m", "hypercorn", "http_corpus:corpus_app", "--bind", f"127.0.0.1:{port}",
                "--log-level", "warning"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests" / "reliability"), str(ROOT)])
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
    servers = ["pounce", "uvicorn"]
    if importlib.util.find_spec("hypercorn") is not None:
        servers.append("hypercorn")
    results = {name: run_all(name) for name in servers}
    labels = {"pounce": "pounce", "uvicorn": "uvicorn h11", "hypercorn": "hypercorn"}
    header = ["case", "expected"]
    for name in servers:
        header += [labels[name], "ok"]
    header.append("differs")
    rows = []
    met = dict.fromkeys(servers, 0)
    differ = 0
    for index, case in enumerate(CORPUS):
        row = [case.name, "/".join(map(str, case.expect))]
        texts = []
        for name in servers:
            outcome, alive = results[name][index]
            text = describe(outcome, alive)
            ok = meets(case, outcome, alive)
            met[name] += ok
            texts.append(text)
            row += [text, "yes" if ok else "NO"]
        differs = any(text != texts[0] for text in texts[1:])
        differ += differs
        row.append("*" if differs else "")
        rows.append(row)
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    summary = ", ".join(f"{labels[name]} meets {met[name]}" for name in servers)
    print(f"\n{len(rows)} cases: {summary}; {differ} differ from pounce somewhere. "
          "Legend: c closed, A app answered, ! worker not serving after.")
    return 0 if met["pounce"] == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
